"""Engine, sessions, the unit of work, and lean reads.

One unit of work commits once: the change, its outbox events and its audit rows land
together or not at all. Service functions take the unit of work and never commit. A read
behind a keyed GET can skip the session altogether: a ``Query`` run by ``Database.fetch``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import weakref
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, MetaData, Select, event, inspect, text
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import QueuePool
from sqlalchemy.util.concurrency import greenlet_spawn

from numberplane.kernel import changes as change_notification
from numberplane.kernel import sqlite

log = logging.getLogger("numberplane.db")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def epoch_ms(value: dt.datetime | None = None) -> int:
    return int((value or utcnow()).timestamp() * 1000)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        # none_as_null: an absent value is SQL NULL, not the JSON text 'null'.
        dict[str, Any]: JSON(none_as_null=True),
        list[Any]: JSON(none_as_null=True),
        list[str]: JSON(none_as_null=True),
        dt.datetime: DateTime(timezone=True),
        int: BigInteger().with_variant(BigInteger(), "postgresql"),
    }


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every timestamp we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned for the backend: WAL and a busy timeout for SQLite, a pool for PostgreSQL."""
    options: dict[str, Any] = {"json_serializer": _dumps}
    if is_sqlite(url):
        # Reads answered on the event loop, writes on aiosqlite's thread (kernel.sqlite).
        options["connect_args"] = {"timeout": 30, "async_creator_fn": sqlite.connect}
    elif "poolclass" not in kwargs:
        # No pre-ping on every checkout: with asyncpg it is three round trips (BEGIN, ";",
        # ROLLBACK), more than a whole keyed read. A connection idle for IDLE_PING_S is pinged
        # instead (``_ping_if_idle``); a busy one that died fails its statement, and SQLAlchemy
        # then drops the whole pool, so the next checkout connects afresh.
        options.update(pool_size=10, max_overflow=20)
    options.update(kwargs)
    engine = create_async_engine(url, **options)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    elif "poolclass" not in kwargs and not options.get("pool_pre_ping"):
        event.listen(engine.sync_engine, "connect", _stamp)
        event.listen(engine.sync_engine, "checkin", _stamp)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


class RawJSON(str):
    """JSON text already encoded (a value shared by many rows, encoded once): a JSON column
    stores it as it is."""

    __slots__ = ()


IDLE_PING_S = 10.0


def _stamp(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Pre-ping, but only for a connection that sat idle long enough to have been dropped."""
    since = record.info.get("idle_since")
    if since is not None and time.monotonic() - since < IDLE_PING_S:
        return
    try:
        dbapi_conn.ping()
    except Exception as exc:  # the pool discards it and checks out another
        raise DisconnectionError("connection lost while idle") from exc


def _dumps(value: Any) -> str:
    if isinstance(value, RawJSON):
        return str.__str__(value)
    return json.dumps(value, separators=(",", ":"), default=str)


async def insert_rows(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """``insert_records`` for rows as dicts (every row with the same keys): JSON columns are
    serialised here, one object shared by many rows (a memoised trace) once."""
    if not rows:
        return
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    encoded: dict[int, str] = {}

    def as_json(value: Any) -> str | None:
        if value is None:
            return None
        text = encoded.get(id(value))
        if text is None:
            text = encoded[id(value)] = _dumps(value)
        return text

    records = [tuple(as_json(row[c]) if c in json_columns else row[c] for c in columns) for row in rows]
    await insert_records(session, table, columns, records)


async def copy_records(
    session: AsyncSession, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> bool:
    """COPY ``records`` (one tuple each, in ``columns`` order, JSON columns as text) inside the
    session's transaction on PostgreSQL; False on other databases (``insert_records`` is the
    entry point: it inserts there the way each database does best)."""
    if session.bind is None or session.bind.dialect.name != "postgresql" or not records:
        return False
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection  # asyncpg's Connection
    await driver.copy_records_to_table(table, records=records, columns=list(columns))
    return True


async def insert_records(
    session: AsyncSession, table: Any, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """Insert ``records`` (one tuple each, in ``columns`` order, JSON columns as text) into
    ``table`` inside the session's transaction, the cheapest way each database has: COPY on
    PostgreSQL; on SQLite multi-row INSERTs on the driver's own connection (its writer thread),
    each value bound by its column's SQLAlchemy type, so rows are stored exactly as an INSERT
    through SQLAlchemy stores them, without a dict per row or SQLAlchemy's per-row parameter
    handling on the event loop; an ordinary INSERT on anything else.

    Multi-row on SQLite, not ``executemany``: the writer thread needs the GIL to bind each row
    and gives it up for each step, so under load a row-by-row insert hands the GIL back and forth
    with the event loop twice a row (a context switch each); one statement binds a whole chunk
    in one go and steps once."""
    if not records or await copy_records(session, table.name, columns, records):
        return
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        head, row, bind = _sqlite_insert(table, tuple(columns), session.bind.dialect)
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection  # the aiosqlite connection (kernel.sqlite)
        chunk = max(1, SQLITE_MAX_VARIABLES // len(columns))
        for start in range(0, len(records), chunk):
            chunk_rows = bind(records[start : start + chunk])
            values = [value for bound in chunk_rows for value in bound]
            await driver.execute(f"{head} VALUES {', '.join([row] * len(chunk_rows))}", values)
        return
    rows = [dict(zip(columns, record, strict=True)) for record in records]
    await session.execute(table.insert(), rows)


# Bound values per SQLite statement: the default build's limit (SQLITE_MAX_VARIABLE_NUMBER).
SQLITE_MAX_VARIABLES = 32_766
_Binder = Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]]
_SQLITE_INSERTS: dict[tuple[str, tuple[str, ...]], tuple[str, str, _Binder]] = {}


def _sqlite_insert(table: Any, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, str, _Binder]:
    """The INSERT for ``columns`` of ``table`` on SQLite as SQLAlchemy compiles it, split into
    its head (``INSERT INTO t (...)``) and one row's ``(?, ...)``, and a function that binds
    records for it: each column with a bind processor (dates and times, booleans) through that
    processor, JSON text as plain ``str``. Built once per table and column list."""
    key = (table.name, columns)
    found = _SQLITE_INSERTS.get(key)
    if found is not None:
        return found
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    order = [columns.index(name) for name in compiled.positiontup]  # the statement's "?" order
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for position, index in enumerate(order):
        column_type = table.c[columns[index]].type
        if isinstance(column_type, JSON):
            processors.append((position, _json_text))
            continue
        processor = column_type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((position, processor))

    def bind(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        out = []
        for record in records:
            values = [record[index] for index in order]
            for position, processor in processors:
                value = values[position]
                if value is not None:
                    values[position] = processor(value)
            out.append(tuple(values))
        return out

    head, row = str(compiled).rsplit(" VALUES ", 1)
    found = _SQLITE_INSERTS[key] = (head, row, bind)
    return found


def _json_text(value: Any) -> str:
    """A JSON column's value as the text SQLite stores: text already encoded stays as it is."""
    return str.__str__(value) if isinstance(value, str) else _dumps(value)


class Database:
    """The engine plus a session factory; one per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads need no transaction of their own: on PostgreSQL each statement runs in
        # autocommit (no BEGIN and ROLLBACK round trips; what each statement sees is what it
        # would see in a READ COMMITTED transaction).
        reader = self.engine
        if self.engine.dialect.name == "postgresql":
            reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read_engine = reader
        # Pool connections kept between lean reads (``fetch``): as many as run at once, up to half
        # of what the pool may hand out, so sessions always find connections; none with a pool
        # that keeps none. A read past the kept ones checks one out of the pool and back, and the
        # pool's reset on return is a round trip: with 8 kept, 16 concurrent keyed GETs cost
        # 293-300 us of CPU each on PostgreSQL, against 257-262 with 15 (bench/api.py, interleaved).
        self._lean: list[Any] = []
        pool = self.engine.sync_engine.pool
        capacity = pool.size() + max(0, pool._max_overflow) if isinstance(pool, QueuePool) else 0
        self._lean_max = capacity // 2
        self.reader = async_sessionmaker(reader, expire_on_commit=False, autoflush=False)
        # This process's change notifications (``kernel.changes``): caches subscribe to it.
        self.feed = change_notification.ChangeFeed()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sync_engine(self) -> Engine:
        return self.engine.sync_engine

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only (nothing it does is committed)."""
        async with self.reader() as session:
            yield session

    async def fetch(self, query: Query, /, **values: Any) -> list[Any]:
        """The rows of a lean read (``Query``): no session, no transaction, one pooled connection
        for one statement, rows with the selected labels as attributes.

        A keyed GET through an ORM session cost several times the rest of the request
        (bench/api.py): the session, the ORM's statement handling and instance loading, and a
        thread or greenlet hop per driver call. Here the statement was compiled once, and the
        driver runs it directly (inline on SQLite, ``kernel.sqlite``) on a connection kept for
        lean reads (``_lean``; checking one out of the pool and back cost as much as the read).
        If the driver fails (a connection dropped while kept), that connection is discarded and
        the read runs again the ordinary way, on another connection, with SQLAlchemy's errors.
        """
        dialect = self.engine.dialect
        plan = query.plan(dialect)
        if plan is not None:
            fairy: Any = self._lean.pop() if self._lean else None
            try:
                if fairy is None:
                    fairy = await greenlet_spawn(self.engine.sync_engine.pool.connect)
                raw = await plan.run(fairy.driver_connection, plan.params(values), dialect)
            except BaseException as exc:
                if fairy is not None:  # its state is unknown: never hand it out again
                    fairy.invalidate()
                    fairy.close()
                if not isinstance(exc, Exception):
                    raise
                log.warning("lean read failed; reading it again through SQLAlchemy", exc_info=True)
            else:
                if len(self._lean) < self._lean_max:
                    self._lean.append(fairy)
                else:
                    await greenlet_spawn(fairy.close)
                return plan.rows(raw)
        async with self._read_engine.connect() as conn:
            return list(await conn.execute(query.statement, values))

    def uow(self, actor: Actor | None = None) -> UnitOfWork:
        return UnitOfWork(self, actor or Actor.system())

    async def dispose(self) -> None:
        kept, self._lean = self._lean, []
        for fairy in kept:
            await greenlet_spawn(fairy.close)
        await self.engine.dispose()


def entity_columns(entity: type[Any], prefix: str = "") -> list[Any]:
    """Every mapped column of an ORM class, labelled by its attribute name (``prefix`` first):
    a lean row (``Database.fetch``) then reads like the entity (``row.meta``, not ``metadata``)."""
    return [attr.columns[0].label(prefix + attr.key) for attr in inspect(entity).column_attrs]


class Query:
    """A read written once: a Core ``SELECT`` whose values are named ``bindparam``s, compiled
    once per engine and run by ``Database.fetch`` on the driver itself. Statements the plan
    cannot run directly (expanding ``IN``, other drivers) run through SQLAlchemy as usual."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan | None] = weakref.WeakKeyDictionary()

    def plan(self, dialect: Dialect) -> _Plan | None:
        try:
            return self._plans[dialect]
        except KeyError:
            plan = self._plans[dialect] = _Plan.of(self.statement, dialect)
            return plan


_REQUIRED = object()


@dataclass
class _Plan:
    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]  # a value the statement carries itself (SQLite's OFFSET 0), else _REQUIRED
    binds: tuple[Callable[[Any], Any] | None, ...]
    types: tuple[Any, ...]  # each result column's SQLAlchemy type
    row: Any  # a namedtuple class: the selected labels
    asyncpg: bool
    # Each column's result processor: with asyncpg some depend on the column's type oid, so
    # they are found at the first run, from the prepared statement (as SQLAlchemy does).
    results: tuple[Callable[[Any], Any] | None, ...] | None = None

    @classmethod
    def of(cls, statement: Select[*tuple[Any, ...]], dialect: Dialect) -> _Plan | None:
        if dialect.driver not in ("asyncpg", "aiosqlite"):
            return None
        compiled: Any = statement.compile(dialect=dialect)
        if compiled.positiontup is None or compiled.post_compile_params or compiled.literal_execute_params:
            return None
        labels = [c.keyname for c in compiled._result_columns]
        if not all(label.isidentifier() and not label.startswith("_") for label in labels):
            return None
        processors = compiled._bind_processors
        bound = [compiled.binds[name] for name in compiled.positiontup]
        plan = cls(
            sql=compiled.string,
            names=tuple(compiled.positiontup),
            defaults=tuple(_REQUIRED if b.required or b.callable else b.value for b in bound),
            binds=tuple(processors.get(name) for name in compiled.positiontup),
            types=tuple(c.type for c in compiled._result_columns),
            row=namedtuple("Row", labels),  # type: ignore[misc]
            asyncpg=dialect.driver == "asyncpg",
        )
        if not plan.asyncpg:
            plan.resolve(dialect, [None] * len(labels))
        return plan

    def resolve(self, dialect: Dialect, coltypes: list[Any]) -> None:
        procs = tuple(
            t._cached_result_processor(dialect, c) for t, c in zip(self.types, coltypes, strict=True)
        )
        self.results = procs if any(procs) else ()

    def params(self, values: dict[str, Any]) -> list[Any]:
        out = [
            values[name] if default is _REQUIRED else values.get(name, default)
            for name, default in zip(self.names, self.defaults, strict=True)
        ]
        for i, bind in enumerate(self.binds):
            if bind is not None and out[i] is not None:
                out[i] = bind(out[i])
        return out

    async def run(self, driver: Any, params: list[Any], dialect: Dialect) -> list[Any]:
        if self.asyncpg:
            if self.results is None:
                prepared = await driver.prepare(self.sql)
                self.resolve(dialect, [a.type.oid for a in prepared.get_attributes()])
            return await driver.fetch(self.sql, *params)  # type: ignore[no-any-return]
        if isinstance(driver, sqlite.InlineReads):
            return await driver.select(self.sql, params)
        return list(await driver.execute_fetchall(self.sql, params))

    def rows(self, raw: list[Any]) -> list[Any]:
        make = self.row._make
        procs = self.results
        if not procs:
            return [make(r) for r in raw]
        return [
            make([v if p is None or v is None else p(v) for p, v in zip(procs, r, strict=True)]) for r in raw
        ]


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit trail: an API key (via some API surface), the CLI, or the system."""

    kind: str
    id: str | None
    org_id: str | None
    via: str = "v1"
    request_id: str | None = None

    @classmethod
    def system(cls, org_id: str | None = None) -> Actor:
        return cls(kind="system", id=None, org_id=org_id, via="system")

    @classmethod
    def cli(cls, org_id: str | None = None) -> Actor:
        return cls(kind="cli", id=None, org_id=org_id, via="cli")


@dataclass
class UnitOfWork:
    """A transaction that commits once, together with its outbox events and audit rows."""

    db: Database
    actor: Actor
    session: AsyncSession = field(init=False)
    # Keys of what this unit of work changed (``kernel.changes``), published when it commits.
    changes: set[str] = field(default_factory=set, init=False)
    _pending: list[Any] = field(default_factory=list, init=False)
    _hooks: list[Any] = field(default_factory=list, init=False)

    async def __aenter__(self) -> UnitOfWork:
        self.session = self.db.sessionmaker()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is not None:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def lock_for_write(self) -> None:
        """Make this unit of work's reads part of its write, before the first read.

        A read-merge-write (a partial update laid over the stored value) must not interleave
        with another writer's. PostgreSQL locks the rows read (``SELECT ... FOR UPDATE``); SQLite
        has no row locks and its driver begins a transaction only at the first write, so the
        read would see a state another writer may already be replacing: take the database's
        write lock now (``BEGIN IMMEDIATE``; other writers wait, readers do not).
        """
        if self.db.dialect == "sqlite":
            await self.session.execute(text("BEGIN IMMEDIATE"))

    def add_record(self, record: Any) -> None:
        """Queue an outbox event or audit row; flushed in the same transaction at commit."""
        self._pending.append(record)

    def after_commit(self, hook: Any) -> None:
        """Run ``hook()`` once the transaction is durable (cache invalidation, wake-ups)."""
        self._hooks.append(hook)

    async def commit(self) -> None:
        """Commit the change with its records; tell every process what changed (other processes
        inside the transaction, this one once it is durable); then run the after-commit hooks."""
        if self._pending:
            self.session.add_all(self._pending)
            self._pending = []
        keys, self.changes = self.changes, set()
        if keys:
            await change_notification.write(self.session, self.db.dialect, keys)
        await self.session.commit()
        if keys:
            self.db.feed.publish(keys)
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            result = hook()
            if hasattr(result, "__await__"):
                await result

    async def rollback(self) -> None:
        self._pending = []
        self._hooks = []
        self.changes = set()
        await self.session.rollback()
