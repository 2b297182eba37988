"""The key cache: a keyed request costs no query once its key is known, and a revoked key stops
working at once in the process that revoked it and within a second in every other server process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from numberplane.kernel.changes import ChangeFeed
from numberplane.kernel.db import Actor, Database
from numberplane.tenancy import service as tenancy
from numberplane.tenancy.keycache import KeyCache
from tests.support import OrgCreds, ServerProcess, wait_for

# How long a committed revocation may take to reach another process.
COHERENT_WITHIN_S = 1.0


class Queries:
    """Counts the statements a database runs (a real engine event, not a stub)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.count = 0

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> Queries:
        event.listen(self.db.sync_engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.db.sync_engine, "before_cursor_execute", self._seen)


async def _revoke(db: Database, key_id: str) -> None:
    async with db.uow(Actor.cli()) as uow:
        await tenancy.revoke_key(uow=uow, key_id=key_id)
        await uow.commit()


def _cache(db: Database) -> KeyCache:
    cache = KeyCache()
    cache.attach(db.feed)
    return cache


async def test_a_known_key_is_checked_without_a_query(db: Database, org: OrgCreds) -> None:
    cache = _cache(db)
    try:
        first = await cache.authenticate(db, org.key_id, org.secret)
        assert first is not None and first.org_id == org.org_id and first.key_id == org.key_id
        with Queries(db) as queries:
            for _ in range(5):
                assert await cache.authenticate(db, org.key_id, org.secret) == first
                assert await cache.authenticate(db, org.key_id, org.secret + "x") is None
                assert await cache.authenticate(db, org.key_id, "") is None
        assert queries.count == 0
    finally:
        cache.detach()


async def test_the_cache_holds_no_secret_nor_the_stored_hash(db: Database, org: OrgCreds) -> None:
    cache = _cache(db)
    try:
        assert await cache.authenticate(db, org.key_id, org.secret) is not None
        held = repr(cache._live) + repr(cache._unknown)
        assert org.secret not in held
        assert tenancy.hash_secret(org.secret) not in held
        assert tenancy.hash_secret(org.secret).encode() not in cache._live[org.key_id][1]
    finally:
        cache.detach()


async def test_unknown_ids_are_cached_and_bounded(db: Database) -> None:
    cache = KeyCache(max_unknown=3)
    cache.attach(db.feed)
    try:
        ids = [f"key_{i:024x}" for i in range(5)]
        for key_id in ids:
            assert await cache.authenticate(db, key_id, "secret") is None
        assert len(cache._unknown) == 3 and list(cache._unknown) == ids[2:]
        with Queries(db) as queries:
            assert await cache.authenticate(db, ids[-1], "secret") is None
        assert queries.count == 0
    finally:
        cache.detach()


async def test_a_revoked_key_fails_at_once_in_the_revoking_process(db: Database, org: OrgCreds) -> None:
    cache = _cache(db)
    try:
        assert await cache.authenticate(db, org.key_id, org.secret) is not None
        await _revoke(db, org.key_id)
        assert await cache.authenticate(db, org.key_id, org.secret) is None
        with Queries(db) as queries:  # and stays refused, now from the cache
            assert await cache.authenticate(db, org.key_id, org.secret) is None
        assert queries.count == 0
    finally:
        cache.detach()


async def test_creating_a_key_clears_its_id_from_the_unknown_ones(
    db: Database, org: OrgCreds, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _cache(db)
    try:
        chosen = "key_" + "ab" * 12
        assert await cache.authenticate(db, chosen, "whatever") is None
        assert chosen in cache._unknown
        monkeypatch.setattr(tenancy, "_new_key_id", lambda: chosen)
        async with db.uow(Actor.cli(org.org_id)) as uow:
            created = await tenancy.create_key(uow=uow, org_id=org.org_id)
            await uow.commit()
        assert created.key_id == chosen
        principal = await cache.authenticate(db, created.key_id, created.secret)
        assert principal is not None and principal.org_id == org.org_id
    finally:
        cache.detach()


async def test_while_the_feed_is_not_live_every_check_asks_the_database(db: Database, org: OrgCreds) -> None:
    feed = ChangeFeed()  # a feed this process's commits do not reach: like a listener that is down
    cache = KeyCache()
    cache.attach(feed)
    try:
        assert await cache.authenticate(db, org.key_id, org.secret) is not None  # cached
        feed.set_live(False)
        await _revoke(db, org.key_id)  # published to db.feed, which this cache does not follow
        assert await cache.authenticate(db, org.key_id, org.secret) is None
        feed.set_live(True)
        assert await cache.authenticate(db, org.key_id, org.secret) is None
    finally:
        cache.detach()


async def test_a_lookup_that_raced_with_a_revocation_is_not_stored(db: Database, org: OrgCreds) -> None:
    cache = _cache(db)
    try:
        epoch = cache.epoch
        cache.invalidate([org.key_id])  # a revocation lands while the lookup is in flight
        async with db.session() as session:
            key = await tenancy.live_key(session, org.key_id)
        assert key is not None
        from numberplane.kernel.deps import Principal

        cache._put_live(org.key_id, Principal(org_id=key.org_id, key_id=key.id), key.secret_hash, epoch)
        assert org.key_id not in cache._live
    finally:
        cache.detach()


# -- two real server processes ---------------------------------------------------------------------


@pytest.fixture
def servers(db_url: str) -> Iterator[list[ServerProcess]]:
    procs = [ServerProcess(db_url), ServerProcess(db_url)]
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def test_a_revoked_key_stops_working_within_a_second_on_every_server(
    servers: list[ServerProcess], db: Database, org: OrgCreds
) -> None:
    clients = [httpx.AsyncClient(base_url=s.url, timeout=10) for s in servers]
    try:
        for http in clients:
            # Until its change listener is up a server asks the database each time; wait for
            # the cache to be in use (a key created now is known at once: creation notifies).
            for _ in range(20):
                response = await http.get("/v1/agents?limit=1", headers=org.bearer)
                assert response.status_code == 200, response.text
        await asyncio.sleep(0.5)  # listeners up (SQLite polls every 0.25 s), keys cached
        for http in clients:
            assert (await http.get("/v1/agents?limit=1", headers=org.bearer)).status_code == 200

        await _revoke(db, org.key_id)

        async def refused_everywhere() -> bool:
            answers = await asyncio.gather(
                *(http.get("/v1/agents?limit=1", headers=org.bearer) for http in clients)
            )
            return all(a.status_code == 401 for a in answers)

        await wait_for(refused_everywhere, timeout=COHERENT_WITHIN_S, interval=0.02)
        # And never again, through every presentation and route.
        for _ in range(10):
            for http in clients:
                for headers in (org.bearer, org.key_headers):
                    response = await http.get("/v1/agents?limit=1", headers=headers)
                    assert response.status_code == 401
                    assert response.json()["code"] == "unauthorized"
                response = await http.get("/v1/route", params={"to": "+14155550100"}, headers=org.bearer)
                assert response.status_code == 401
    finally:
        for http in clients:
            await http.aclose()
