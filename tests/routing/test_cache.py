"""The route cache: every write invalidates it, in this process and in every other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from numberplane.kernel import changes as invalidation
from numberplane.kernel.changes import ChangeListener
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.settings import Settings
from numberplane.routing.cache import RouteCache
from numberplane.routing.service import Router, router_of
from numberplane.routing.snapshot import RouteSnapshot
from tests.routing.world import World
from tests.support import OrgCreds, ServerProcess, wait_for


def _snap(e164: str, agents: tuple[str, ...] = ()) -> RouteSnapshot:
    from numberplane.routing.snapshot import AgentTarget

    return RouteSnapshot(
        number_id="n",
        org_id="o",
        e164=e164,
        status="active",
        carrier="twilio",
        carrier_account_id="a",
        agents=tuple(AgentTarget(a, 1, 1.0, stream_url="wss://x") for a in agents),
    )


def test_cache_unit() -> None:
    cache = RouteCache(max_entries=2)
    epoch = cache.epoch
    cache.put("+1", _snap("+1", ("ag1",)), epoch)
    cache.put("+2", None, epoch)
    assert cache.get("+1")[0] and cache.get("+2") == (True, None)
    cache.put("+3", _snap("+3"), epoch)  # full: the oldest goes
    assert not cache.get("+1")[0] and len(cache) == 2
    cache.invalidate_numbers(["+3"])
    assert not cache.get("+3")[0]
    cache.put("+4", _snap("+4"), epoch)  # loaded before the invalidation: not stored
    assert not cache.get("+4")[0]
    cache.put("+5", _snap("+5", ("ag2",)), cache.epoch)
    cache.invalidate_agents(["ag2"])
    assert not cache.get("+5")[0]
    cache.put("+6", _snap("+6"), cache.epoch)
    cache.bypass = True
    assert cache.get("+6") == (False, None)
    cache.bypass = False
    cache.invalidate_numbers(["*"])
    assert len(cache) == 0


async def test_writes_invalidate_this_process(
    client: httpx.AsyncClient, world: World, org: OrgCreds, app: object
) -> None:
    router: Router = router_of(app)
    agent = await world.agent(stream_url="wss://agents.example.com/v1")
    e164 = world.fresh_number()

    async def outcome() -> dict[str, object]:
        response = await client.get("/v1/route", params={"to": e164, "call_id": "c"}, headers=org.bearer)
        return response.json()["decision"]  # type: ignore[no-any-return]

    assert (await outcome())["outcome"] == "not_in_service"
    found, cached = router.cache.get(e164)
    assert found and cached is None  # unknown numbers are cached too ...
    number = await world.number(None, e164=e164, agents=[(agent, None, 1.0)])
    assert not router.cache.get(e164)[0]  # ... until the number is created
    assert (await outcome())["stream_url"] == "wss://agents.example.com/v1"
    assert router.cache.get(e164)[0]
    await world.update_number(
        number.id, fallback={"number": "+14155550177"}, allowed_inbound_countries=["GB"]
    )
    assert (await outcome())["outcome"] == "rejected"
    await world.update_number(number.id, allowed_inbound_countries=None)
    await world.new_agent_version(agent, stream_url="wss://agents.example.com/v2")
    decision = await outcome()
    assert decision["stream_url"] == "wss://agents.example.com/v2" and decision["agent_version"] == 2


async def test_a_rolled_back_write_does_not_invalidate(db: Database) -> None:
    seen: list[list[str]] = []
    db.feed.subscribe(invalidation.NUMBER, seen.append)
    try:
        with pytest.raises(RuntimeError):
            async with db.uow(Actor.system()) as uow:
                invalidation.numbers_changed(uow, ["+14155550111"])
                raise RuntimeError("boom")
        assert seen == []
        async with db.uow(Actor.system()) as uow:
            invalidation.numbers_changed(uow, ["+14155550112"])
            await uow.commit()
        assert seen == [["+14155550112"]]
    finally:
        db.feed.unsubscribe(invalidation.NUMBER, seen.append)


# -- Across processes: NOTIFY (PostgreSQL) or change_log (SQLite) on commit, a listener in each ------


async def test_other_processes_hear_committed_changes_only(db: Database) -> None:
    # Another process's view of the same database: its own engine and feed. What its cache
    # learns, it learns through its listener (LISTEN on PostgreSQL, polling change_log on SQLite).
    other = Database(db.url)
    cache = RouteCache()
    other.feed.subscribe(invalidation.NUMBER, cache.invalidate_numbers)
    other.feed.on_reset(cache.reset)
    listener = ChangeListener(other)
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        for key in ("+14155550121", "+14155550122"):
            cache.put(key, None, cache.epoch)
        with pytest.raises(RuntimeError):
            async with db.uow(Actor.system()) as uow:
                invalidation.numbers_changed(uow, ["+14155550121"])
                await uow.session.flush()
                raise RuntimeError("rolled back")
        async with db.uow(Actor.system()) as uow:
            invalidation.numbers_changed(uow, ["+14155550122"])
            await uow.commit()
        await wait_for(lambda: not cache.get("+14155550122")[0], timeout=10)
        # Notifications arrive in commit order: had the rolled-back one been sent, it would be here.
        assert cache.get("+14155550121")[0]
    finally:
        await listener.stop()
        await other.dispose()


@pytest.fixture
def two_servers(db_url: str) -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(db_url), ServerProcess(db_url)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _cache_hits(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith('numberplane_route_cache_lookups_total{result="hit"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_two_server_processes_agree_within_a_second_of_an_update(
    two_servers: list[ServerProcess], world: World, org: OrgCreds, settings: Settings
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/before")
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    async with httpx.AsyncClient(timeout=5) as http:

        async def stream_urls() -> list[object]:
            out = []
            for server in two_servers:
                response = await http.get(
                    server.url + "/v1/route", params={"to": number.phone_number}, headers=org.bearer
                )
                decision = response.json()["decision"]
                out.append(decision.get("stream_url") or decision["outcome"])
            return out

        # Both processes have the number cached (their LISTEN connections are up: hits are counted).
        async def both_cached() -> bool:
            assert await stream_urls() == ["wss://agents.example.com/before"] * 2
            hits = [_cache_hits((await http.get(s.url + "/metrics")).text) for s in two_servers]
            return all(h > 0 for h in hits)

        await wait_for(both_cached, timeout=15, interval=0.1)

        # A new agent version: every number following the agent's latest version routes anew.
        await world.new_agent_version(agent, stream_url="wss://agents.example.com/after")
        started = time.monotonic()
        await wait_for(
            lambda: _agree(stream_urls, ["wss://agents.example.com/after"] * 2), timeout=1.0, interval=0.02
        )
        first = time.monotonic() - started

        # A number update: the country allow-list now excludes the caller (None: unparseable).
        await world.update_number(number.id, allowed_inbound_countries=["GB"])
        started = time.monotonic()
        await wait_for(lambda: _agree(stream_urls, ["rejected", "rejected"]), timeout=1.0, interval=0.02)
        second = time.monotonic() - started
    print(f"\ncross-process agreement after update: {first * 1000:.0f} ms, {second * 1000:.0f} ms")


async def _agree(fetch: object, expected: list[object]) -> bool:
    return await fetch() == expected  # type: ignore[operator,no-any-return]


async def test_snapshot_connections_survive_a_dropped_backend_and_stay_bounded(
    db: Database, backend: str
) -> None:
    """The data plane's own PostgreSQL connections: a connection the server drops is replaced and
    the statement run again (the caller never sees it); a failing statement closes its connection;
    never more than ``size`` run at once."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL: SQLite reads the snapshot through the engine")
    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    from numberplane.routing.service import SnapshotConnections

    conns = SnapshotConnections(invalidation.asyncpg_dsn(db.url), 2)
    try:
        pid = (await conns.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"]
        killer = Database(db.url, poolclass=NullPool)
        async with killer.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await killer.dispose()
        await asyncio.sleep(0.1)
        again = (await conns.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"]
        assert again != pid  # the dropped one was replaced, the statement answered

        import asyncpg

        with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
            await conns.fetch("SELECT 1 / 0")
        assert (await conns.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"] != again

        # Six callers at once: never more than two statements reach PostgreSQL. Watched from
        # another connection until all six are done (the most seen at once is what counts).
        sleeps = asyncio.gather(*(conns.fetch("SELECT pg_sleep(0.2) -- bounded") for _ in range(6)))
        watcher = Database(db.url, poolclass=NullPool)
        seen: list[int] = []
        # Autocommit: inside one transaction pg_stat_activity would show its first snapshot throughout.
        async with watcher.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            while not sleeps.done():
                seen.append(
                    await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE query LIKE '%-- bounded' AND state = 'active'"
                        )
                    )
                )
                await asyncio.sleep(0.02)
        await watcher.dispose()
        await sleeps
        assert max(seen) == 2
        assert len(conns._free) <= 2
    finally:
        await conns.close()
