"""SQLite reads answered on the event loop (``kernel.sqlite``): same answers, writes still on
aiosqlite's thread, and a read too long for the loop is run again on the thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

from numberplane.kernel.db import Database

COUNT_TO = (
    "SELECT count(*), sum(x) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
    "WHERE x < :n) SELECT x FROM c)"
)
ROWS_TO = (
    "SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) "
    "SELECT x FROM c)"
)


class ThreadCalls:
    """Counts the calls that reach aiosqlite's thread (its own ``_execute``, instrumented)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        original = aiosqlite.Connection._execute

        async def counted(conn: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.names.append(getattr(fn, "__name__", "?"))
            return await original(conn, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
    yield db
    await db.dispose()


async def test_reads_take_no_thread_hop_and_writes_do(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sqlite_db.session() as session:  # a first connection (connecting uses the thread)
        await session.execute(text("SELECT 1"))
    calls = ThreadCalls(monkeypatch)
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO t (id, name) VALUES (1, 'one'), (2, 'two')"))
        await session.commit()
    assert "execute" in calls.names and "commit" in calls.names
    calls.names.clear()
    async with sqlite_db.session() as session:
        rows = (await session.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
        one = (await session.execute(text("select name from t where id = :id"), {"id": 1})).scalar_one()
    assert [tuple(r) for r in rows] == [(1, "one"), (2, "two")] and one == "one"
    assert calls.names == []


async def test_a_read_inside_a_write_transaction_sees_the_write(sqlite_db: Database) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("INSERT INTO t (id, name) VALUES (3, 'three')"))
        seen = (await session.execute(text("SELECT name FROM t WHERE id = 3"))).scalar_one()
        assert seen == "three"
        await session.rollback()
    async with sqlite_db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM t WHERE id = 3"))).scalar_one() == 0


async def test_a_long_read_moves_to_the_thread_and_answers_right(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sqlite_db.session() as session:
        await session.execute(text("SELECT 1"))
    calls = ThreadCalls(monkeypatch)
    n = 300_000
    async with sqlite_db.session() as session:
        count, total = (await session.execute(text(COUNT_TO), {"n": n})).one()
    assert (count, total) == (n, n * (n + 1) // 2)
    assert "execute" in calls.names  # interrupted inline, run again on the thread
    calls.names.clear()
    async with sqlite_db.session() as session:  # long to fetch rather than to start
        rows = (await session.execute(text(ROWS_TO), {"n": n})).scalars().all()
    assert len(rows) == n and rows[0] == 1 and rows[-1] == n
    assert "fetchall" in calls.names
    calls.names.clear()
    async with sqlite_db.session() as session:  # and the connection reads inline again after
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() >= 0
    assert calls.names == []


async def test_the_loop_keeps_turning_during_a_long_read(sqlite_db: Database) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    async with sqlite_db.session() as session:
        await session.execute(text(COUNT_TO), {"n": 2_000_000})
    done.set()
    await task
    assert ticks > 1  # other tasks ran while the read was on the thread


async def test_a_connection_that_cannot_open_has_stopped_its_thread(tmp_path: Path) -> None:
    """aiosqlite stops the thread of a failed connection without waiting for it; an event loop
    closed meanwhile got the thread's answer as an exception in that thread. The failure is
    raised once the thread has stopped."""
    from numberplane.kernel import sqlite

    connection = sqlite.connect(str(tmp_path / "missing-dir" / "nope.db"))
    with pytest.raises(Exception, match="unable to open database file"):
        await connection
    assert not connection._thread.is_alive()
