"""Reads without transaction round trips, and a pool that pings only connections left idle."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from numberplane.kernel import db as kernel_db
from numberplane.kernel.db import Database

TXID = "SELECT txid_current()"  # the id of the transaction the statement runs in


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
        killer = Database(db_url, poolclass=NullPool)
        try:
            async with killer.engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await killer.dispose()
        await asyncio.sleep(0.1)
        async with database.reading() as session:
            again = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await database.dispose()
