"""Identifiers: time-ordered UUIDs (v7 layout), so primary-key order is creation order.

Keyset pagination walks the primary key; with v7 ids that is also newest-first order
without a second sort column.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_id() -> str:
    """A UUIDv7 string. Monotonic within a process even when many are made in one millisecond."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:
                ms += 1
                _seq = 0
        else:
            _seq = 0
        _last_ms = ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFFFFFFFFFFFFFF
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | (seq & 0xFFF) << 64 | 0x2 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_ids(count: int) -> list[str]:
    """``count`` ids as ``new_id`` makes them one by one (same order, same layout), for a batch of
    rows: one lock and one read of randomness instead of one each."""
    global _last_ms, _seq
    stamps: list[tuple[int, int]] = []
    with _lock:
        ms, seq = time.time_ns() // 1_000_000, _seq
        if ms <= _last_ms:
            ms = _last_ms
        else:
            seq = -1
        for _ in range(count):
            seq += 1
            if seq > 0xFFF:
                ms, seq = ms + 1, 0
            stamps.append((ms, seq))
        if stamps:
            _last_ms, _seq = ms, seq
    rand = os.urandom(8 * count).hex()
    out = []
    prefix_ms, prefix = -1, ""
    for index, (ms, seq) in enumerate(stamps):
        if ms != prefix_ms:
            head = f"{ms & 0xFFFFFFFFFFFF:012x}"
            prefix_ms, prefix = ms, f"{head[:8]}-{head[8:]}-7"
        r = rand[16 * index : 16 * index + 16]  # 64 random bits, 2 of them replaced by the variant
        out.append(f"{prefix}{seq:03x}-{_VARIANT[r[0]]}{r[1:4]}-{r[4:]}")
    return out


# A random hex digit's low two bits under the variant bits (0b10): 8, 9, a or b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return len(value) == 36
