"""Reads without transaction round trips, and a pool that pings only connections left idle."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Integer, bindparam, column, func, select, text
from sqlalchemy import table as sa_table
from sqlalchemy.pool import NullPool

from numberplane.kernel import db as kernel_db
from numberplane.kernel.db import Database
from tests.support import OrgCreds

TXID = "SELECT txid_current()"  # the id of the transaction the statement runs in


async def _terminate_backend(db_url: str, pid: int) -> None:
    """Kill one PostgreSQL connection from another, as a server restart or a proxy would."""
    killer = Database(db_url, poolclass=NullPool)
    try:
        async with killer.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


async def test_a_reading_session_runs_each_statement_on_its_own(db: Database, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL: SQLite reads take no round trip at all")
    async with db.reading() as session:
        first = (await session.execute(text(TXID))).scalar_one()
        second = (await session.execute(text(TXID))).scalar_one()
    assert first != second  # each statement its own transaction: no BEGIN, no ROLLBACK
    async with db.session() as session:  # an ordinary session still has its transaction
        first = (await session.execute(text(TXID))).scalar_one()
        assert (await session.execute(text(TXID))).scalar_one() == first


async def test_a_connection_killed_while_idle_is_replaced(
    db_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL connection pool")
    monkeypatch.setattr(kernel_db, "IDLE_PING_S", 0.0)  # every checkout counts as idle
    database = Database(db_url)
    try:
        async with database.reading() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await _terminate_backend(db_url, pid)
        await asyncio.sleep(0.1)
        async with database.reading() as session:
            again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await database.dispose()


# -- lean reads (``Database.fetch``) ------------------------------------------------------------

_KEYS = sa_table("api_keys", column("id"), column("org_id"), column("created_at"))
_LEAN = kernel_db.Query(
    select(_KEYS.c.id, _KEYS.c.org_id.label("owner"), _KEYS.c.created_at)
    .where(_KEYS.c.org_id == bindparam("org_id"))
    .order_by(_KEYS.c.id)
    .limit(bindparam("rows", type_=Integer))
)


async def test_a_lean_read_answers_what_sqlalchemy_answers(db: Database, org: OrgCreds) -> None:
    rows = await db.fetch(_LEAN, org_id=org.org_id, rows=5)
    async with db.engine.connect() as conn:
        expected = (await conn.execute(_LEAN.statement, {"org_id": org.org_id, "rows": 5})).all()
    assert rows and [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert rows[0].owner == org.org_id  # the selected labels are the rows' attributes
    assert await db.fetch(_LEAN, org_id="nobody", rows=5) == []


async def test_a_lean_read_the_driver_cannot_run_goes_through_sqlalchemy(db: Database, org: OrgCreds) -> None:
    expanding = kernel_db.Query(
        select(_KEYS.c.id).where(_KEYS.c.org_id.in_(bindparam("orgs", expanding=True)))
    )
    assert expanding.plan(db.engine.dialect) is None
    rows = await db.fetch(expanding, orgs=[org.org_id, "nobody"])
    assert {r.id for r in rows} == {r.id for r in await db.fetch(_LEAN, org_id=org.org_id, rows=100)}


async def test_a_lean_read_on_a_dead_connection_is_read_again(
    db_url: str, backend: str, org: OrgCreds
) -> None:
    database = Database(db_url)
    try:
        assert (await database.fetch(_LEAN, org_id=org.org_id, rows=1))[0].owner == org.org_id
        assert len(database._lean) == 1  # kept for the next lean read
        kept = database._lean[0]
        if backend == "postgresql":
            pid_query = kernel_db.Query(select(func.pg_backend_pid().label("pid")))
            pid = (await database.fetch(pid_query))[0].pid
            await _terminate_backend(db_url, pid)
            await asyncio.sleep(0.1)
        else:
            kept.driver_connection._connection.close()  # the sqlite3 connection under it
        assert (await database.fetch(_LEAN, org_id=org.org_id, rows=1))[0].owner == org.org_id
        assert (await database.fetch(_LEAN, org_id=org.org_id, rows=1))[0].owner == org.org_id
        assert database._lean and database._lean[0] is not kept  # the dead one was dropped
    finally:
        await database.dispose()
    assert database._lean == []


async def test_concurrent_lean_reads_keep_up_to_half_the_pool(
    db_url: str, backend: str, org: OrgCreds
) -> None:
    """As many connections are kept for lean reads as ran at once, up to half of what the pool
    may hand out (a read past the kept ones pays the pool's reset round trip); sessions still
    find connections while they are kept."""
    database = Database(db_url, pool_size=10, max_overflow=10)  # 20 at most: up to 10 kept
    try:
        reads = await asyncio.gather(*(database.fetch(_LEAN, org_id=org.org_id, rows=1) for _ in range(20)))
        assert [rows[0].owner for rows in reads] == [org.org_id] * 20
        assert len(database._lean) == 10  # the other ten went back to the pool
        async with database.session() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await database.dispose()
    assert database._lean == []


def test_every_lean_read_of_the_api_runs_on_the_driver(db: Database) -> None:
    """A statement the plan cannot run (an expanding IN, say) still answers, through SQLAlchemy,
    but slowly and silently: the reads behind the keyed GETs must all have a plan."""
    from numberplane.agents import service as agents
    from numberplane.numbers import reading

    queries = [q for m in (agents, reading) for q in vars(m).values() if isinstance(q, kernel_db.Query)]
    assert len(queries) >= 6
    assert all(q.plan(db.engine.dialect) is not None for q in queries)
