"""In-process cache of API keys, so a keyed request costs no database round trip.

Selecting the key cost more than the rest of a keyed GET (bench/api.py; a session, a query and a
rollback per request). A server process keeps, per key id:

- a live key: its org and a *verifier* of its stored hash, a BLAKE2b keyed with a random
  per-process key over the SHA-256 the database holds. A presented secret is hashed the same
  way and compared with ``hmac.compare_digest`` (constant time). The plaintext secret is never
  kept, nor the database's hash itself; a wrong secret for a known key costs no query either;
- a key id that does not exist or is revoked: a negative entry that expires after
  ``unknown_ttl`` seconds (floods of made-up ids cost no queries).

Both maps are bounded (oldest entry dropped first). The cache follows the change feed
(``kernel.changes``, topic ``API_KEY``): revoking a key, and creating one (which may have been
cached as unknown), evict it in the writing process at once and in every other server process
as soon as its listener hears it (NOTIFY on PostgreSQL, the ``change_log`` poll on SQLite).
While the feed is not live the cache is bypassed (every request asks the database), and it is
emptied when the feed comes back. A lookup that raced with an eviction answers its request but
is not stored (``epoch``), so a revoked key is never put back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from numberplane.kernel import changes
from numberplane.kernel.changes import ChangeFeed
from numberplane.kernel.deps import Principal
from numberplane.tenancy import service

_Entry = tuple[Principal, bytes]


class KeyCache:
    def __init__(self, *, max_entries: int = 10_000, max_unknown: int = 10_000, unknown_ttl: float = 60.0):
        self.max_entries = max_entries
        self.max_unknown = max_unknown
        self.unknown_ttl = unknown_ttl
        self._pepper = secrets.token_bytes(32)
        self._live: OrderedDict[str, _Entry] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # key id -> monotonic expiry
        self.epoch = 0
        self.bypass = False
        self._feed: ChangeFeed | None = None

    def __len__(self) -> int:
        return len(self._live) + len(self._unknown)

    # -- wiring ------------------------------------------------------------------------------------

    def attach(self, feed: ChangeFeed) -> None:
        """Follow ``feed``: evict what it names, bypass while it is not live."""
        self._feed = feed
        feed.subscribe(changes.API_KEY, self.invalidate)
        feed.on_reset(self.reset)
        self.bypass = not feed.live

    def detach(self) -> None:
        """Stop following the feed; from then on every check asks the database."""
        if self._feed is not None:
            self._feed.unsubscribe(changes.API_KEY, self.invalidate)
            self._feed.remove_reset_listener(self.reset)
            self._feed = None
        self.reset(False)

    def invalidate(self, key_ids: Iterable[str]) -> None:
        self.epoch += 1
        for key_id in key_ids:
            self._live.pop(key_id, None)
            self._unknown.pop(key_id, None)

    def reset(self, live: bool) -> None:
        """The feed's reset: empty, and bypass while changes may be missed."""
        self.epoch += 1
        self._live.clear()
        self._unknown.clear()
        self.bypass = not live

    # -- checking ----------------------------------------------------------------------------------

    def _verifier(self, stored_hash: str) -> bytes:
        return hashlib.blake2b(stored_hash.encode(), key=self._pepper, digest_size=32).digest()

    def check(self, key_id: str, secret: str) -> tuple[bool, Principal | None]:
        """(known, principal) from the cache alone: ``known`` False means ask the database."""
        if self.bypass or not service.well_formed(key_id, secret):
            return (not self.bypass), None
        entry = self._live.get(key_id)
        if entry is not None:
            principal, verifier = entry
            if hmac.compare_digest(self._verifier(service.hash_secret(secret)), verifier):
                return True, principal
            return True, None
        expires = self._unknown.get(key_id)
        if expires is not None:
            if time.monotonic() < expires:
                return True, None
            del self._unknown[key_id]
        return False, None

    async def authenticate(self, db: Any, key_id: str, secret: str) -> Principal | None:
        """The principal of these credentials, or None: from the cache, else one query."""
        known, principal = self.check(key_id, secret)
        if known:
            return principal
        if not service.well_formed(key_id, secret):
            return None
        epoch = self.epoch
        async with db.reading() as session:
            key = await service.live_key(session, key_id)
        if key is None:
            self._put_unknown(key_id, epoch)
            return None
        principal = Principal(org_id=key.org_id, key_id=key.id)
        self._put_live(key_id, principal, key.secret_hash, epoch)
        return principal if service.secret_matches(secret, key.secret_hash) else None

    def _put_live(self, key_id: str, principal: Principal, stored_hash: str, epoch: int) -> None:
        if self.bypass or epoch != self.epoch or self.max_entries <= 0:
            return
        if key_id not in self._live and len(self._live) >= self.max_entries:
            del self._live[next(iter(self._live))]
        self._live[key_id] = (principal, self._verifier(stored_hash))

    def _put_unknown(self, key_id: str, epoch: int) -> None:
        if self.bypass or epoch != self.epoch or self.max_unknown <= 0:
            return
        if key_id not in self._unknown and len(self._unknown) >= self.max_unknown:
            del self._unknown[next(iter(self._unknown))]
        self._unknown[key_id] = time.monotonic() + self.unknown_ttl
