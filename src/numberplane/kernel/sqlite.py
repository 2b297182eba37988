"""SQLite reads on the event loop, writes on aiosqlite's thread.

aiosqlite runs every call (cursor, execute, fetch, close, the pool's rollback) on its own
thread and wakes the event loop for each answer: five thread round trips for a one-query
session, which cost more than the rest of a keyed GET (bench/api.py). Most of those calls
cannot block: making a cursor, closing one, a rollback or commit with no transaction open,
and a ``SELECT`` (in WAL mode a reader never waits for a writer). So those run inline, and
everything else (writes, a commit of a write, DDL, pragmas) keeps the thread, where a busy
database may wait without holding up the event loop.

A read that turns out long is not allowed to hold the loop either: inline reads run under a
progress handler that interrupts them after ``INLINE_BUDGET_S``; the statement is then run
again on the thread (a ``SELECT`` has no effects, and none of its rows had been handed out).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from functools import partial
from typing import Any

import aiosqlite

INLINE_BUDGET_S = 0.002  # longest an inline read may hold the event loop
_STEPS = 2_000  # SQLite VM instructions between budget checks

_FETCHES = frozenset({"fetchone", "fetchmany", "fetchall"})


def _is_select(sql: Any) -> bool:
    return isinstance(sql, str) and sql.lstrip()[:6].upper() == "SELECT"


class _Overrun(Exception):
    pass


class InlineReads(aiosqlite.Connection):
    """An aiosqlite connection that answers the calls that cannot block without its thread."""

    def __init__(self, connector: Any, iter_chunk_size: int = 64) -> None:
        super().__init__(connector, iter_chunk_size)
        self._inline: tuple[sqlite3.Cursor, tuple[Any, ...]] | None = None
        self._deadline = 0.0
        self._overran = False

    async def _connect(self) -> InlineReads:
        try:
            await super()._connect()
        except BaseException:
            # aiosqlite stops the thread of a connection that failed to open without waiting for
            # it; waiting here means the thread never answers an event loop closed meanwhile (an
            # exception in that thread: the readiness check's test, and at a process's exit).
            await asyncio.to_thread(self._thread.join, 5.0)
            raise
        return self

    def _progress(self) -> int:
        if time.perf_counter() > self._deadline:
            self._overran = True
            return 1
        return 0

    def _bounded(self, conn: sqlite3.Connection, fn: Any, args: tuple[Any, ...]) -> Any:
        self._overran = False
        self._deadline = time.perf_counter() + INLINE_BUDGET_S
        conn.set_progress_handler(self._progress, _STEPS)
        try:
            return fn(*args)
        except sqlite3.OperationalError:
            if self._overran:
                raise _Overrun from None
            raise
        finally:
            conn.set_progress_handler(None, 0)

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        owner = getattr(fn, "__self__", None)
        if conn is None or not self._running or kwargs or owner is None:
            return await super()._execute(fn, *args, **kwargs)
        name = getattr(fn, "__name__", "")
        if owner is conn:
            if name == "cursor" or (name in ("rollback", "commit") and not conn.in_transaction):
                return fn(*args)
        elif isinstance(owner, sqlite3.Cursor):
            if name == "close":
                if self._inline is not None and self._inline[0] is owner:
                    self._inline = None
                return fn()
            if name == "execute" and args and _is_select(args[0]):
                try:
                    result = self._bounded(conn, fn, args)
                except _Overrun:
                    self._inline = None
                    return await super()._execute(fn, *args)
                self._inline = (owner, args)
                return result
            if name in _FETCHES and self._inline is not None and self._inline[0] is owner:
                try:
                    return self._bounded(conn, fn, args)
                except _Overrun:  # run it again where it may take its time
                    executed = self._inline[1]
                    self._inline = None
                    await super()._execute(owner.execute, *executed)
                    return await super()._execute(fn, *args)
            if name.startswith("execute") and self._inline is not None and self._inline[0] is owner:
                self._inline = None
        return await super()._execute(fn, *args)

    async def select(self, sql: str, params: Any) -> list[Any]:
        """All rows of a ``SELECT``: inline under the budget, else again on the thread (a lean
        read, ``kernel.db.Database.fetch``, which owns this connection while it runs)."""
        conn = self._connection
        if conn is None or not self._running:
            raise sqlite3.ProgrammingError("connection is not open")

        def rows() -> list[Any]:
            return conn.execute(sql, params).fetchall()

        try:
            return self._bounded(conn, rows, ())  # type: ignore[no-any-return]
        except _Overrun:
            return await super()._execute(rows)  # type: ignore[no-any-return]


def connect(database: str, **kwargs: Any) -> InlineReads:
    """``aiosqlite.connect`` with inline reads (the sqlite3 connection is used from two threads,
    one call at a time: SQLAlchemy awaits each before the next)."""
    kwargs["check_same_thread"] = False
    connection = InlineReads(partial(sqlite3.connect, database, **kwargs))
    connection._thread.daemon = True
    return connection
