"""Change notification: every process that writes tells every running process what changed.

Caches (routes, carrier-account keys, API keys) live in server processes, but writers are many:
the API, ``numbers import``, ``carriers reconcile``, the worker, any future job. So the
notification is part of the writer's *unit of work*, not of any process's wiring:

- a service calls ``changed(uow, topic, ids)`` (or ``numbers_changed`` …) inside its unit of work;
- on commit, the unit of work publishes the keys (``"<topic>:<id>"``) to its own process's
  ``ChangeFeed`` (``db.feed``), and to every other process:
  - PostgreSQL: ``SELECT pg_notify('numberplane_changes', …)`` in the transaction just before it
    commits (PostgreSQL delivers a NOTIFY only on commit, so a rollback notifies no one);
  - SQLite: a row in ``change_log`` in the same transaction (SQLite has no NOTIFY);
- each server process runs one ``ChangeListener`` that LISTENs (PostgreSQL) or polls
  ``change_log`` (SQLite) and publishes what it hears to its feed.

Subscribers (the caches) get ids per topic. While a listener is not connected, notifications may
be missed, so the feed is *not live*: caches bypass themselves, and they are emptied when it comes
back or when a commit changed too much to name (``on_reset``). A process without a listener (the
CLI, a test app without its lifespan) only hears its own writes; its feed counts as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("numberplane.changes")

CHANNEL = "numberplane_changes"
FLUSH_ALL = "*"
MAX_PAYLOAD = 7_000  # pg_notify payloads must stay under 8000 bytes
MAX_KEYS = 2_000  # beyond this many keys in one commit, one "flush everything" is cheaper

# Topics. A key on the wire is "<topic>:<id>".
NUMBER = "number"  # id: the E.164 of a number whose routing changed
AGENT = "agent"  # id: an agent whose latest version changed or that was deleted
ACCOUNT = "account"  # id: a carrier account whose credentials or identifiers changed
API_KEY = "api_key"  # id: an API key that was revoked or changed
OUTBOX = "outbox"  # id: "new" — events were written (delivery workers wake up)

Subscriber = Callable[[list[str]], None]
ResetListener = Callable[[bool], None]


def key(topic: str, ident: str) -> str:
    return f"{topic}:{ident}"


def changed(uow: Any, topic: str, ids: Iterable[str]) -> None:
    """Queue ``ids`` of ``topic`` as changed, to be published when ``uow`` commits."""
    uow.changes.update(key(topic, i) for i in ids if i)


def numbers_changed(uow: Any, phone_numbers: Iterable[str]) -> None:
    """These E.164 numbers route differently (created, updated, released, moved)."""
    changed(uow, NUMBER, phone_numbers)


def agents_changed(uow: Any, agent_ids: Iterable[str]) -> None:
    """Numbers bound to these agents route differently (a new version, or deleted)."""
    changed(uow, AGENT, agent_ids)


def accounts_changed(uow: Any, account_ids: Iterable[str]) -> None:
    """These carrier accounts' credentials or identifiers changed (signature verification)."""
    changed(uow, ACCOUNT, account_ids)


def api_keys_changed(uow: Any, key_ids: Iterable[str]) -> None:
    """These API keys were revoked or changed (key verification caches)."""
    changed(uow, API_KEY, key_ids)


class ChangeFeed:
    """One process's view of changes: its own commits, and (with a listener) everyone else's."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._reset_listeners: list[ResetListener] = []
        self.live = True

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Call ``subscriber(ids)`` with the ids of ``topic`` in each published change."""
        subs = self._subscribers.setdefault(topic, [])
        if subscriber not in subs:
            subs.append(subscriber)

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        subs = self._subscribers.get(topic, [])
        if subscriber in subs:
            subs.remove(subscriber)

    def on_reset(self, listener: ResetListener) -> None:
        """Call ``listener(live)`` whenever what a cache holds can no longer be trusted: the feed
        went live (empty yourself, then cache), stopped being live (bypass yourself), or a commit
        changed too much to name (empty yourself)."""
        if listener not in self._reset_listeners:
            self._reset_listeners.append(listener)

    def remove_reset_listener(self, listener: ResetListener) -> None:
        if listener in self._reset_listeners:
            self._reset_listeners.remove(listener)

    def set_live(self, live: bool) -> None:
        self.live = live
        for listener in list(self._reset_listeners):
            listener(live)

    def publish(self, keys: Iterable[str]) -> None:
        by_topic: dict[str, list[str]] = {}
        for k in keys:
            if k == FLUSH_ALL:
                self.set_live(self.live)
                continue
            topic, sep, ident = k.partition(":")
            if sep and ident:
                by_topic.setdefault(topic, []).append(ident)
        for topic, ids in by_topic.items():
            for subscriber in list(self._subscribers.get(topic, ())):
                try:
                    subscriber(ids)
                except Exception:  # a broken subscriber must not break the others or the writer
                    log.exception("change subscriber for %s failed", topic)


def payloads(keys: Iterable[str]) -> list[str]:
    """Comma-joined keys in payloads that fit a NOTIFY; one flush-all when there are too many."""
    ordered = sorted(set(keys))
    if len(ordered) > MAX_KEYS:
        return [FLUSH_ALL]
    out: list[str] = []
    current: list[str] = []
    size = 0
    for k in ordered:
        if size + len(k) + 1 > MAX_PAYLOAD and current:
            out.append(",".join(current))
            current, size = [], 0
        current.append(k)
        size += len(k) + 1
    if current:
        out.append(",".join(current))
    return out


async def write(session: AsyncSession, dialect: str, keys: Iterable[str]) -> None:
    """Tell other processes, inside the committing transaction."""
    for payload in payloads(keys):
        if dialect == "postgresql":
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
            )
        else:
            await session.execute(
                text("INSERT INTO change_log (keys, created_at) VALUES (:keys, CURRENT_TIMESTAMP)"),
                {"keys": payload},
            )


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ChangeListener:
    """Publishes other processes' changes to this process's feed, and keeps ``feed.live`` true
    only while it is sure to hear them.

    PostgreSQL: one asyncpg connection LISTENing on ``CHANNEL`` (keepalive, reconnect with
    backoff). SQLite: polls ``change_log`` every ``poll_s`` and prunes rows older than
    ``keep_s``.
    """

    def __init__(
        self,
        db: Any,
        *,
        keepalive_s: float = 15.0,
        poll_s: float = 0.25,
        keep_s: float = 600.0,
    ) -> None:
        self.db = db
        self.feed: ChangeFeed = db.feed
        self.keepalive_s = keepalive_s
        self.poll_s = poll_s
        self.keep_s = keep_s
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.feed.set_live(False)
        runner = self._listen if self.db.dialect == "postgresql" else self._poll
        self._task = asyncio.create_task(runner(), name="numberplane-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.connected.clear()
        self.feed.set_live(True)  # only its own writes from now on, which it hears directly

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.feed.publish(payload.split(","))

    def _up(self) -> None:
        self.feed.set_live(True)
        self.connected.set()

    def _down(self) -> None:
        if self.feed.live:
            self.feed.set_live(False)
        self.connected.clear()

    async def _listen(self) -> None:
        import asyncpg

        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.db.url), timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._up()
                backoff = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self.keepalive_s)
                    except TimeoutError:
                        await asyncio.wait_for(conn.execute("SELECT 1"), 5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change LISTEN connection failed (%s); caches bypassed", exc.__class__.__name__)
            finally:
                self._down()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _poll(self) -> None:
        last: int | None = None
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with self.db.engine.connect() as conn:
                    if last is None:
                        last = int((await conn.scalar(text("SELECT MAX(id) FROM change_log"))) or 0)
                        self._up()
                    rows = (
                        await conn.execute(
                            text("SELECT id, keys FROM change_log WHERE id > :last ORDER BY id LIMIT 500"),
                            {"last": last},
                        )
                    ).all()
                    for row in rows:
                        last = int(row.id)
                        self.feed.publish(str(row.keys).split(","))
                    if loop.time() - pruned_at > 60:
                        pruned_at = loop.time()
                        await conn.execute(
                            text("DELETE FROM change_log WHERE created_at < datetime('now', :age)"),
                            {"age": f"-{int(self.keep_s)} seconds"},
                        )
                        await conn.commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change_log poll failed (%s); caches bypassed", exc.__class__.__name__)
                last = None
                self._down()
            await asyncio.sleep(self.poll_s)
