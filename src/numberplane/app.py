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
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numberplane import __version__
from numberplane.agents import views as agents_views
from numberplane.calls import retention as calls_retention
from numberplane.calls import views as calls_views
from numberplane.calls.recorder import Recorder
from numberplane.calls.writer import WriterProcess
from numberplane.calls.writer import chosen as writer_chosen
from numberplane.carriers import views as carriers_views
from numberplane.console import views as console_views
from numberplane.dialects import freya, helloannie, retell, signalwire, twilio, vapi, vocode, zudu
from numberplane.events import retention as events_retention
from numberplane.events import views as events_views
from numberplane.events.worker import PeriodicJob, Worker, WorkerConfig
from numberplane.kernel import errors
from numberplane.kernel.changes import ChangeListener
from numberplane.kernel.db import Database, is_sqlite
from numberplane.kernel.deps import request_id
from numberplane.kernel.head import HeadAsGet
from numberplane.kernel.inputs import TextGuard
from numberplane.kernel.limits import BodyLimits
from numberplane.kernel.openapi import Link, add_links
from numberplane.kernel.serving import exit_with_supervisor
from numberplane.kernel.settings import Settings, get_settings
from numberplane.numbers import billing
from numberplane.numbers import service as numbers_service
from numberplane.numbers import views as numbers_views
from numberplane.routing import fastpath
from numberplane.routing import views as routing_views
from numberplane.routing.handlers import ENDPOINTS
from numberplane.routing.service import Router
from numberplane.tenancy.keycache import KeyCache

log = logging.getLogger("numberplane")

# Every API surface, mounted in this order. Agents and carrier accounts sit below numbers, so
# whether numbers still use one (which refuses its deletion) is numbers' answer, given here.
ROUTERS = (
    agents_views.make_router(agent_users=numbers_service.agent_users),
    numbers_views.router,
    calls_views.router,
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

# OpenAPI links from create to read/change/delete (``kernel.openapi``): where each API surface
# has the created resource's id in its response, and the links a path pattern cannot find.
ID_POINTERS = {
    "/helloannie": "/data/id",
    "/freya": "/data/result/phoneNumber/id",
    "/zudu": "/data/phone_number",
    "/2010-04-01": "/sid",
}
_RETELL_BY_NUMBER = {"phone_number": "$response.body#/phone_number"}
_VOCODE_BY_NUMBER = {"query.phone_number": "$response.body#/number"}
EXTRA_LINKS: tuple[Link, ...] = (
    *(
        (
            "POST",
            f"/retell/{create}-phone-number",
            f"/retell/{op}-phone-number/{{phone_number}}",
            _RETELL_BY_NUMBER,
        )
        for create in ("create", "import")
        for op in ("get", "update", "delete")
    ),
    *(
        ("POST", f"/vocode/v1/numbers/{create}", f"/vocode/v1/numbers{op}", _VOCODE_BY_NUMBER)
        for create in ("buy", "link")
        for op in ("", "/update", "/cancel")
    ),
    (
        "POST",
        "/zudu/api/phone-numbers/create",
        "/zudu/api/phone-numbers/{phone_number}",
        {"phone_number": "$response.body#/data/phone_number"},
    ),
    (
        "POST",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json",
        {"Sid": "$response.body#/sid"},
    ),
    (
        "POST",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
        "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Kind}.json",
        {"Kind": "$response.body#/sid"},
    ),
    ("POST", "/v1/phone-numbers/import", "/v1/phone-numbers/{ref}", {"ref": "$response.body#/results/0/id"}),
)

# Routes that take many rows in one body, and so the larger body limit.
BULK_ROUTES = (
    ("POST", "/v1/phone-numbers/import"),
    ("PUT", "/freya/api/v2/phone-numbers"),
    ("POST", "/console/import"),
)

# Swagger UI and ReDoc as shipped by the fastapi-offline package, served from this process:
# /docs and /redoc work on a machine without internet (FastAPI's defaults load them from a CDN).
DOCS_STATIC = "/docs-static"
# The pages may load nothing from elsewhere: ReDoc's sidebar asks a CDN for its logo on every
# view (no option turns it off); the browser refuses it here and ReDoc hides the image.
DOCS_CSP = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'"
}


def _docs_assets() -> str:
    import fastapi_offline

    return str(Path(fastapi_offline.__file__).with_name("static"))


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with every asset from this server; no font or CDN request."""
    app.mount(DOCS_STATIC, StaticFiles(directory=_docs_assets()), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # the online validator badge: off
        )
        page.headers.update(DOCS_CSP)
        return page

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(DOCS_CSP)
        return page


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


def serve_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve ``router``'s routes as the app's own: ``app.include_router`` without the branch.

    FastAPI (0.165) serves an included router as a branch: every request is matched against the
    branch's routes to choose it and again inside it, through a per-route include context. That
    was ~40 us of a keyed GET's ~340 us of CPU on PostgreSQL (bench/api.py, py-spy; routes added
    as they are: 297-313 us against 329-372, interleaved). Our routers declare everything on the
    routes themselves (paths, tags, dependencies, response models), nothing at inclusion, so the
    routes are served as they are; the domain packages gather their parts the same way. A test
    holds the OpenAPI document equal to the included routers' (tests/test_app.py).
    """
    app.router.routes.extend(router.routes)


def periodic_jobs(db: Database, settings: Settings) -> list[PeriodicJob]:
    """What a worker process runs besides webhook delivery (``serve`` with SQLite, ``worker``)."""

    async def renew() -> str:
        renewed = await billing.renew_due(db=db)
        return f"{renewed} number-month(s) renewed"

    async def prune() -> str:
        calls = await calls_retention.retain_calls(db=db, days=settings.call_retention_days)
        pruned = await events_retention.prune_events(
            db=db,
            event_days=settings.event_retention_days,
            delivery_days=settings.delivery_retention_days,
            audit_days=settings.audit_retention_days,
        )
        events = ", ".join(f"{n} {kind}" for kind, n in pruned.items())
        return f"pruned: {calls.summary()}; {events}"

    return [
        PeriodicJob(name="billing", every=settings.billing_check_seconds, run=renew),
        PeriodicJob(name="retention", every=settings.retention_check_seconds, run=prune),
    ]


def _freeze_startup_objects() -> None:
    """Keep the collector off the routing answer's p99.

    Everything imported and built so far lives as long as the process. A full collection walks
    it all (~70 ms with this app loaded): that pause is the p99 of a routing answer. Frozen
    objects are never walked again. Rare full collections: with the default (700, 10, 10) one
    lands every few thousand calls (~90 ms at 1M numbers cached); here every ~100M
    allocations. Measured with bench/routing: cold p99 at 1,000 calls/s 22 ms -> 4 ms, worst
    case 96 -> 20 ms.

    Young collections small: each walks what survived since the last one, and with call
    records queued behind the answers that is most of it (a 20,000 threshold made 8-12 ms
    pauses). At 2,000 they take ~1 ms, as often as it takes: the same work in shorter pauses.
    bench/routing A/B, records on: p99 at 1,000 calls/s warm 4.2-4.3 -> 2.7-3.1 ms, cold
    7.9-14.7 -> 7.0-9.2 ms, throughput unchanged.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(2_000, 500, 100)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    owns_db = db is None
    database = db or Database(settings.database_url)
    # The data plane's per-process state: route cache, account directory, webhook client.
    routing = Router(database, settings)
    # Call records, written behind the data plane's answers (started and stopped in the lifespan).
    writer = None
    if settings.call_records and writer_chosen(settings.call_writer, database.url):
        writer = WriterProcess(database.url, log_level=settings.log_level)
    recorder = Recorder(
        database, interval=settings.call_flush_seconds, batch=settings.call_flush_batch, writer=writer
    )
    routing.recorder = recorder if settings.call_records else None
    # Verified API keys, so a keyed request costs no query; follows the same change feed.
    keys = KeyCache()
    keys.attach(database.feed)
    # With SQLite, `serve` also delivers webhooks and runs the periodic jobs; PostgreSQL
    # deployments run `numberplane worker` processes beside the servers.
    in_process_worker = settings.run_worker_in_process and is_sqlite(database.url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        exit_with_supervisor()  # a --workers worker stops when its supervisor dies
        listener = ChangeListener(database)
        listener.start()
        fastpath.install(app)
        recorder.start()
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
            await recorder.aclose()
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
        docs_url=None,
        redoc_url=None,
        # FastAPI asks OpenTelemetry on every request whether a provider is configured (~8 us
        # each, the carrier path's largest framework cost): only when telemetry is asked for.
        telemetry=None if settings.telemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.db = database
    app.state.settings = settings
    app.state.routing = routing
    app.state.call_recorder = recorder
    app.state.keys = keys
    dialects = (helloannie, freya, signalwire, zudu, retell, vocode, vapi, twilio)
    errors.install(app, shapes=[*(d.ERROR_SHAPE for d in dialects), console_views.ERROR_SHAPE])

    # Text no database can store is refused before any route sees it; an import's rows one by one.
    app.add_middleware(
        TextGuard, row_paths={("POST", "/v1/phone-numbers/import"): "numbers"}, exempt=frozenset(ENDPOINTS)
    )
    # Outside the text guard (a body is limited before it is read), inside the request-id
    # middleware, so a 413 carries the request's id too.
    app.add_middleware(
        BodyLimits,
        default=settings.max_body_bytes,
        routes={route: settings.max_bulk_body_bytes for route in BULK_ROUTES},
    )
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HeadAsGet)  # outermost: the GET's whole path, its body left unsent

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

    @app.get("/", include_in_schema=False)
    @app.get("/dashboard", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(console_views.PREFIX, status_code=307)

    for router in ROUTERS:
        serve_routes(app, router)
    install_docs(app)
    # The console: its pages, and its own CSS and JS served from the package.
    serve_routes(app, console_views.router)
    app.mount(
        f"{console_views.PREFIX}/static",
        StaticFiles(directory=str(console_views.STATIC_DIR)),
        name="console-static",
    )
    plain_openapi = app.openapi

    def openapi_with_links() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(plain_openapi(), id_pointers=ID_POINTERS, extra=EXTRA_LINKS)
        return app.openapi_schema

    app.openapi = openapi_with_links  # type: ignore[method-assign]
    return app
