"""The ASGI application: control plane (/v1), dialects, data plane, health and docs."""

from __future__ import annotations

import importlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numberplane import __version__, errors
from numberplane.db import Database
from numberplane.settings import Settings, get_settings

log = logging.getLogger("numberplane")

# Modules exposing ``router`` (an APIRouter), mounted in this order. Optional ones that are not
# present yet are skipped, so each domain can land on its own.
ROUTER_MODULES = (
    "numberplane.agents.views",
    "numberplane.numbers.views",
    "numberplane.carriers.views",
    "numberplane.events.views",
    "numberplane.routing.views",
    "numberplane.dialects.helloannie",
    "numberplane.dialects.freya",
    "numberplane.dialects.signalwire",
    "numberplane.dialects.zudu",
    "numberplane.dialects.retell",
    "numberplane.dialects.vocode",
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
Lifespan = Callable[[FastAPI], Any]
# Background tasks to run with the app (the in-process worker registers here).
STARTUP_HOOKS: list[Callable[[FastAPI], Awaitable[Any]]] = []
SHUTDOWN_HOOKS: list[Callable[[FastAPI], Awaitable[Any]]] = []


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
        rid = incoming if _REQUEST_ID.match(incoming) else "req_" + secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _include_routers(app: FastAPI) -> None:
    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Not present (the module or its package): that domain has not landed. Anything
            # else missing is a real error.
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue
            raise
        app.include_router(module.router)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    owns_db = db is None
    database = db or Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in STARTUP_HOOKS:
            await hook(app)
        try:
            yield
        finally:
            for hook in SHUTDOWN_HOOKS:
                await hook(app)
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
    errors.install(app)

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

    _include_routers(app)
    return app
