"""The ASGI application: control plane (/v1), dialects, data plane, health and docs.

``create_app`` assembles the process explicitly: the routers it serves, the per-process state
(the data plane's ``Router``, the change listener that keeps every cache right, the in-process
worker with SQLite) and their start and stop order. Importing a module registers nothing.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numberplane import __version__
from numberplane.agents import views as agents_views
from numberplane.carriers import views as carriers_views
from numberplane.dialects import freya, helloannie, retell, signalwire, twilio, vapi, vocode, zudu
from numberplane.events import views as events_views
from numberplane.events.worker import PeriodicJob, Worker, WorkerConfig
from numberplane.kernel import errors
from numberplane.kernel.changes import ChangeListener
from numberplane.kernel.db import Database, is_sqlite
from numberplane.kernel.deps import request_id
from numberplane.kernel.limits import BodyLimits
from numberplane.kernel.settings import Settings, get_settings
from numberplane.numbers import billing
from numberplane.numbers import service as numbers_service
from numberplane.numbers import views as numbers_views
from numberplane.routing import fastpath
from numberplane.routing import views as routing_views
from numberplane.routing.service import Router
from numberplane.tenancy.keycache import KeyCache

log = logging.getLogger("numberplane")

# Every API surface, mounted in this order. Agents and carrier accounts sit below numbers, so
# whether numbers still use one (which refuses its deletion) is numbers' answer, given here.
ROUTERS = (
    agents_views.make_router(agent_users=numbers_service.agent_users),
    numbers_views.router,
    carriers_views.make_router(account_users=numbers_service.account_users),
    events_views.router,
    routing_views.router,
    helloannie.router,
    freya.router,
    signalwire.router,
    zudu.router,
    retell.router,
    vocode.router,
    vapi.router,
    twilio.router,
)

# Routes that take many rows in one body, and so the larger body limit.
BULK_ROUTES = (("POST", "/v1/phone-numbers/import"), ("PUT", "/freya/api/v2/phone-numbers"))


class RequestIdMiddleware:
    """Give every request an id (the caller's ``X-Request-Id`` if well-formed) and echo it.

    Plain ASGI rather than ``@app.middleware("http")``: that form costs about a millisecond per
    request, which every API surface and the data plane would pay.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = request_id(incoming)
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def periodic_jobs(db: Database, settings: Settings) -> list[PeriodicJob]:
    """What a worker process runs besides webhook delivery (``serve`` with SQLite, ``worker``)."""

    async def renew() -> str:
        renewed = await billing.renew_due(db=db)
        return f"{renewed} number-month(s) renewed"

    return [PeriodicJob(name="billing", every=settings.billing_check_seconds, run=renew)]


def _freeze_startup_objects() -> None:
    """Keep the collector off the routing answer's p99.

    Everything imported and built so far lives as long as the process. A full collection walks
    it all (~70 ms with this app loaded): that pause is the p99 of a routing answer. Frozen
    objects are never walked again, so collections stay sub-millisecond. Fewer, larger young
    collections and rarer full ones: with the default (700, 10, 10) a full collection lands
    every few thousand calls (~90 ms at 1M numbers cached). Measured with bench/routing: cold
    p99 at 1,000 calls/s 22 ms -> 4 ms, worst case 96 -> 20 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    owns_db = db is None
    database = db or Database(settings.database_url)
    # The data plane's per-process state: route cache, account directory, webhook client.
    routing = Router(database, settings)
    # Verified API keys, so a keyed request costs no query; follows the same change feed.
    keys = KeyCache()
    keys.attach(database.feed)
    # With SQLite, `serve` also delivers webhooks and runs the periodic jobs; PostgreSQL
    # deployments run `numberplane worker` processes beside the servers.
    in_process_worker = settings.run_worker_in_process and is_sqlite(database.url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        listener = ChangeListener(database)
        listener.start()
        fastpath.install(app)
        worker = None
        if in_process_worker:
            config = WorkerConfig.from_settings(settings)
            worker = Worker(database, config, jobs=periodic_jobs(database, settings))
            worker.start()
        app.state.events_worker = worker
        _freeze_startup_objects()
        try:
            yield
        finally:
            if worker is not None:
                app.state.events_worker = None
                await worker.aclose()
            await routing.aclose()
            await listener.stop()
            keys.detach()
            if owns_db:
                await database.dispose()

    app = FastAPI(
        title="Numberplane",
        version=__version__,
        description="Phone numbers for voice-AI agents: buy, import, configure, route, release.",
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.settings = settings
    app.state.routing = routing
    app.state.keys = keys
    dialects = (helloannie, freya, signalwire, zudu, retell, vocode, vapi, twilio)
    errors.install(app, shapes=[d.ERROR_SHAPE for d in dialects])

    # Inside the request-id middleware, so a 413 carries the request's id too.
    app.add_middleware(
        BodyLimits,
        default=settings.max_body_bytes,
        routes={route: settings.max_bulk_body_bytes for route in BULK_ROUTES},
    )
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The database is reachable")
    async def readyz() -> JSONResponse:
        try:
            async with database.session() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", exc.__class__.__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": database.dialect})

    for router in ROUTERS:
        app.include_router(router)
    return app
