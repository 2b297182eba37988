"""In-process cache of route snapshots by E.164, invalidated by every write.

- Locally: ``routing.invalidation`` listeners evict entries after the writer's commit.
- Across processes (PostgreSQL): the writer's transaction runs
  ``SELECT pg_notify('numberplane_routes', ...)`` just before it commits (NOTIFY is delivered
  only on commit, so a rolled-back change notifies no one), and every server process keeps one
  asyncpg connection LISTENing on that channel that evicts what it hears.
- While that LISTEN connection is down the cache is bypassed (every call reads the database),
  and it is emptied when the connection comes back, because notifications may have been missed.

A miss that raced with an invalidation is returned but not stored (``epoch`` check), so a stale
snapshot never outlives the write that made it stale. Unknown numbers are cached too (as None),
so floods to numbers we don't hold cost no queries; creating a number invalidates its E.164.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from numberplane.db import UnitOfWork
from numberplane.routing import invalidation
from numberplane.routing.snapshot import RouteSnapshot

log = logging.getLogger("numberplane.routing.cache")

CHANNEL = "numberplane_routes"
FLUSH_ALL = "*"
MAX_PAYLOAD = 7_000  # pg_notify payloads must stay under 8000 bytes
MAX_KEYS_PER_TRANSACTION = 2_000  # beyond this, one "flush everything" is cheaper
_SESSION_KEYS = "numberplane_route_keys"
_SESSION_LISTENING = "numberplane_route_listening"


class RouteCache:
    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, RouteSnapshot | None] = {}
        self._by_agent: dict[str, set[str]] = {}
        self.epoch = 0
        self.bypass = False
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, e164: str) -> tuple[bool, RouteSnapshot | None]:
        if self.bypass:
            return False, None
        try:
            value = self._entries[e164]
        except KeyError:
            self.misses += 1
            return False, None
        self.hits += 1
        return True, value

    def put(self, e164: str, value: RouteSnapshot | None, epoch: int) -> None:
        """Store a snapshot loaded while ``self.epoch`` was ``epoch`` (dropped if anything changed since)."""
        if self.bypass or epoch != self.epoch or self.max_entries <= 0:
            return
        if e164 not in self._entries and len(self._entries) >= self.max_entries:
            self._evict(next(iter(self._entries)))
        self._entries[e164] = value
        if value is not None:
            for agent_id in value.agent_ids:
                self._by_agent.setdefault(agent_id, set()).add(e164)

    def _evict(self, e164: str) -> None:
        value = self._entries.pop(e164, None)
        if value is not None:
            for agent_id in value.agent_ids:
                numbers = self._by_agent.get(agent_id)
                if numbers is not None:
                    numbers.discard(e164)
                    if not numbers:
                        del self._by_agent[agent_id]

    def invalidate_numbers(self, numbers: Iterable[str]) -> None:
        self.epoch += 1
        for e164 in numbers:
            if e164 == FLUSH_ALL:
                self.clear()
                return
            self._evict(e164)

    def invalidate_agents(self, agent_ids: Iterable[str]) -> None:
        self.epoch += 1
        for agent_id in agent_ids:
            for e164 in list(self._by_agent.get(agent_id, ())):
                self._evict(e164)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_agent.clear()


# -- Cross-process: NOTIFY in the writer's transaction -------------------------------------------


def _payloads(keys: list[str]) -> list[str]:
    if len(keys) > MAX_KEYS_PER_TRANSACTION:
        return [FLUSH_ALL]
    out: list[str] = []
    current: list[str] = []
    size = 0
    for key in keys:
        if size + len(key) + 1 > MAX_PAYLOAD and current:
            out.append(",".join(current))
            current, size = [], 0
        current.append(key)
        size += len(key) + 1
    if current:
        out.append(",".join(current))
    return out


def _notify_before_commit(session: Session) -> None:
    keys: list[str] | None = session.info.pop(_SESSION_KEYS, None)
    if not keys:
        return
    for payload in _payloads(sorted(set(keys))):
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


def _clear_on_rollback(session: Session, *_: Any) -> None:
    session.info.pop(_SESSION_KEYS, None)


def notify_hook(uow: UnitOfWork, keys: list[str]) -> None:
    """``routing.invalidation`` cross-process hook: queue a NOTIFY for when ``uow`` commits."""
    if uow.db.dialect != "postgresql":
        return
    sync_session = uow.session.sync_session
    sync_session.info.setdefault(_SESSION_KEYS, []).extend(keys)
    if not sync_session.info.get(_SESSION_LISTENING):
        sync_session.info[_SESSION_LISTENING] = True
        event.listen(sync_session, "before_commit", _notify_before_commit)
        event.listen(sync_session, "after_soft_rollback", _clear_on_rollback)


invalidation.add_cross_process_hook(notify_hook)


# -- Cross-process: LISTEN in every server process -----------------------------------------------


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class NotifyListener:
    """One asyncpg connection LISTENing on ``CHANNEL``; reconnects with backoff.

    While disconnected the cache is bypassed; on (re)connect it is emptied.
    """

    def __init__(
        self,
        dsn: str,
        cache: RouteCache,
        *,
        on_accounts: Callable[[list[str]], None] | None = None,
        keepalive_s: float = 15.0,
    ) -> None:
        self.dsn = dsn
        self.cache = cache
        self.on_accounts = on_accounts
        self.keepalive_s = keepalive_s
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.cache.bypass = True
        self._task = asyncio.create_task(self._run(), name="numberplane-route-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        numbers, agents, accounts = invalidation.split_keys(payload.split(","))
        if numbers:
            self.cache.invalidate_numbers(numbers)
        if agents:
            self.cache.invalidate_agents(agents)
        if accounts and self.on_accounts is not None:
            self.on_accounts(accounts)

    async def _run(self) -> None:
        import asyncpg

        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.cache.clear()
                self.cache.bypass = False
                self.connected.set()
                backoff = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self.keepalive_s)
                    except TimeoutError:
                        await asyncio.wait_for(conn.execute("SELECT 1"), 5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "route-cache LISTEN connection failed (%s); cache bypassed", exc.__class__.__name__
                )
            finally:
                self.cache.bypass = True
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
