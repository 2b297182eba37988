"""Opaque keyset cursors. Ids are UUIDv7, so "after this id" is a stable position that costs
the same at page 10,000 as at page 1 (an index seek, never an OFFSET scan)."""

from __future__ import annotations

import base64
import binascii
import json

from numberplane.errors import ValidationFailed

MAX_LIMIT = 1000


def encode_cursor(last_id: str, direction: str = "desc") -> str:
    raw = json.dumps({"after": last_id, "dir": direction}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, direction = str(data["after"]), str(data.get("dir", "desc"))
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValidationFailed.field(field, "is not a cursor this API issued") from exc
    if direction not in ("asc", "desc") or len(after) > 64:
        raise ValidationFailed.field(field, "is not a cursor this API issued")
    return after, direction


def check_limit(limit: int, field: str = "limit") -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise ValidationFailed.field(field, f"must be between 1 and {MAX_LIMIT}")
    return limit
