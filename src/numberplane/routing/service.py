"""The data plane's per-process state and its one operation: from a call to a Decision.

``Router`` owns the route cache, the carrier-account directory and the HTTP client used for
inbound webhooks. Both caches follow the database's change feed (``kernel.changes``), which
the app keeps in step with every other process. Lookup is the cache, or one indexed query on a
miss.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any, Literal, NamedTuple

import httpx

from numberplane.calls.recorder import Recorder
from numberplane.kernel import changes
from numberplane.kernel.changes import asyncpg_dsn
from numberplane.kernel.db import Database
from numberplane.kernel.net import CustomerClient
from numberplane.kernel.settings import Settings
from numberplane.routing import metrics, snapshot, webhook
from numberplane.routing.cache import RouteCache
from numberplane.routing.carrier_auth import CarrierAuth
from numberplane.routing.decide import CallInfo, Decision, WebhookResult, decide, needs_webhook
from numberplane.routing.snapshot import AgentTarget, RouteSnapshot
from numberplane.routing.verify import AccountDirectory

log = logging.getLogger("numberplane.routing")

POOL_SIZE = 10


class Routed(NamedTuple):
    """A decision and what it was made from."""

    route: RouteSnapshot | None
    call: CallInfo
    result: WebhookResult | None
    webhook_ms: float | None
    decision: Decision


class Lookup(enum.Enum):
    """``route_full``'s ``route`` when its caller has not looked the number up (it does)."""

    PENDING = "pending"


class Router:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.cache = RouteCache(
            max_entries=settings.route_cache_size, unknown_ttl=settings.route_unknown_ttl_seconds
        )
        self.accounts = AccountDirectory(db)
        self.carrier_auth = CarrierAuth(self.accounts)
        self._client: httpx.AsyncClient | None = None
        # Where call observations go (``calls.recorder.Recorder``); the app sets it. None: no records.
        self.recorder: Recorder | None = None
        # The snapshot query's own connections (PostgreSQL): see ``SnapshotConnections``.
        self._pool = (
            SnapshotConnections(asyncpg_dsn(db.url), POOL_SIZE) if db.dialect == "postgresql" else None
        )
        self._sql = snapshot.postgresql_sql() if db.dialect == "postgresql" else None
        feed = db.feed
        feed.subscribe(changes.NUMBER, self.cache.invalidate_numbers)
        feed.subscribe(changes.AGENT, self.cache.invalidate_agents)
        feed.subscribe(changes.ACCOUNT, self.accounts.invalidate)
        feed.on_reset(self._reset)
        self.cache.bypass = not feed.live

    def _reset(self, live: bool) -> None:
        self.cache.reset(live)
        self.accounts.invalidate()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = CustomerClient(
                allow_private=self.settings.allow_private_urls,
                headers={"Accept": "application/json"},
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._client

    async def aclose(self) -> None:
        feed = self.db.feed
        feed.unsubscribe(changes.NUMBER, self.cache.invalidate_numbers)
        feed.unsubscribe(changes.AGENT, self.cache.invalidate_agents)
        feed.unsubscribe(changes.ACCOUNT, self.accounts.invalidate)
        feed.remove_reset_listener(self._reset)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._pool is not None:
            await self._pool.close()

    async def lookup(self, e164: str) -> RouteSnapshot | None:
        """The snapshot of the number holding ``e164``: from the cache, or one query."""
        found, value = self.cache.get(e164)
        if found:
            metrics.cache_lookup("hit")
            return value
        metrics.cache_lookup("bypass" if self.cache.bypass else "miss")
        epoch = self.cache.epoch
        if self._sql is not None and self._pool is not None:
            value = snapshot.build(await self._pool.fetch(self._sql, e164))
        else:
            async with self.db.engine.connect() as conn:
                value = await snapshot.load(conn, e164)
        self.cache.put(e164, value, epoch)
        return value

    async def load_agent(self, org_id: str, agent_id: str, version: int | None) -> AgentTarget | None:
        async with self.db.engine.connect() as conn:
            return await snapshot.load_agent(conn, org_id=org_id, agent_id=agent_id, version=version)

    async def route(
        self,
        call: CallInfo,
        *,
        account_id: str | None = None,
        org_id: str | None = None,
        ask_webhook: bool = True,
    ) -> Decision:
        """Decide ``call``. The number counts as unknown unless it belongs to ``account_id`` (the
        verified carrier account) or ``org_id`` (the API key's org), whichever is given."""
        routed = await self.route_full(call, account_id=account_id, org_id=org_id, ask_webhook=ask_webhook)
        return routed.decision

    async def route_full(
        self,
        call: CallInfo,
        *,
        account_id: str | None = None,
        org_id: str | None = None,
        ask_webhook: bool = True,
        route: RouteSnapshot | Literal[Lookup.PENDING] | None = Lookup.PENDING,
    ) -> Routed:
        """``route``, with what the decision was made from (for the call record and its trace).
        ``route``: the snapshot of ``call.to`` when the caller already has it (the carrier
        endpoints look it up once, for the signature check and for this); looked up here if not."""
        if route is Lookup.PENDING:
            route = await self.lookup(call.to) if call.to else None
        if route is not None and account_id is not None and route.carrier_account_id != account_id:
            route = None
        if route is not None and org_id is not None and route.org_id != org_id:
            route = None
        result: WebhookResult | None = None
        webhook_ms: float | None = None
        if needs_webhook(route, call):
            assert route is not None
            if call.fallback or not ask_webhook:
                result = WebhookResult.failed("skipped")
            else:
                asked = time.perf_counter()
                result = await self._ask(route, call)
                webhook_ms = (time.perf_counter() - asked) * 1000
        return Routed(route, call, result, webhook_ms, decide(route, call, result))

    async def _ask(self, route: RouteSnapshot, call: CallInfo) -> WebhookResult:
        started = time.perf_counter()
        result = await webhook.ask(
            self.client,
            route,
            call,
            allow_private=self.settings.allow_private_urls,
            load_agent=self.load_agent,
        )
        metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)
        if result.status == "failed":
            metrics.WEBHOOK_FAILURES.labels(result.error or "unknown").inc()
            log.warning(
                "inbound webhook failed for %s (call %s): %s after %d attempt(s); carrying on",
                route.e164,
                call.call_id,
                result.error,
                result.attempts,
            )
        elif result.error:
            log.warning("inbound webhook for %s: %s; using the number's agents", route.e164, result.error)
        return result


def record(decision: Decision, carrier: str, started: float) -> None:
    """Count and log one decision."""
    elapsed = time.perf_counter() - started
    metrics.decision(decision.outcome, carrier, elapsed)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "route to=%s from=%s outcome=%s reason=%s carrier=%s call_id=%s agent=%s latency_ms=%.2f",
            decision.to,
            decision.caller,
            decision.outcome,
            decision.reason,
            carrier,
            decision.call_id,
            decision.agent_id,
            elapsed * 1000,
        )


def router_of(app: Any) -> Router:
    """The app's Router (``create_app`` makes one per app)."""
    router: Router = app.state.routing
    return router


class SnapshotConnections:
    """Up to ``size`` asyncpg connections for the snapshot query, handed out from a free list.

    A cache miss runs one read-only statement, never inside a transaction, so a connection has
    no state to reset between uses. asyncpg's ``Pool`` cost 50-70 us of CPU per fetch on top of
    the statement itself (its acquire, a shielded release task, the reset round trip); here
    taking and returning one is a list pop and append. A connection that fails is closed, never
    handed out again; a dropped connection (the server restarted, an idle timeout) is replaced
    and the statement run once more on the new one.
    """

    def __init__(self, dsn: str, size: int, *, timeout: float = 10.0) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self._free: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._slots:
            for attempt in (1, 2):
                conn = self._free.pop() if self._free else await self._connect()
                try:
                    rows: list[Any] = await conn.fetch(sql, *args, timeout=self.timeout)
                except BaseException as exc:
                    conn.terminate()  # its state is unknown: never handed out again
                    if attempt == 1 and _dropped(exc):
                        continue
                    raise
                if self._closed:
                    conn.terminate()
                else:
                    self._free.append(conn)
                return rows
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.dsn, timeout=self.timeout, command_timeout=self.timeout)

    async def close(self) -> None:
        self._closed = True
        free, self._free = self._free, []
        for conn in free:
            await conn.close(timeout=self.timeout)


def _dropped(exc: BaseException) -> bool:
    """A connection the server or the network closed (worth one more try on a new one)."""
    import asyncpg

    return isinstance(
        exc, asyncpg.exceptions.ConnectionDoesNotExistError | asyncpg.InterfaceError | ConnectionError
    )
