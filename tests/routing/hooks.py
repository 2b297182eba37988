"""A customer's inbound webhook: a real HTTP server on loopback that answers, fails, hangs or answers late."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import LiveServer


@dataclass
class Behaviour:
    kind: str  # json | status | hang | late | raw
    body: Any = None
    status: int = 200
    delay: float = 0.0


@dataclass
class HookServer:
    server: LiveServer | None = None
    _plans: dict[str, list[Behaviour]] = field(default_factory=dict)
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, *plan: Behaviour) -> str:
        """A fresh URL whose requests get ``plan`` in order (the last one repeats)."""
        name = secrets.token_hex(6)
        with self._lock:
            self._plans[name] = list(plan)
            self.received[name] = []
        assert self.server is not None
        return f"{self.server.url}/hook/{name}"

    def requests(self, url: str) -> list[dict[str, Any]]:
        return self.received[url.rsplit("/", 1)[1]]

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        with self._lock:
            self.received[name].append(
                {"json": json.loads(body or b"null"), "headers": dict(request.headers)}
            )
            plan = self._plans[name]
            step = plan.pop(0) if len(plan) > 1 else plan[0]
        if step.kind in ("hang", "late"):
            waited = 0.0
            limit = step.delay if step.kind == "late" else 5.0
            while waited < limit:
                if await request.is_disconnected():
                    return Response(status_code=499)
                await asyncio.sleep(0.02)
                waited += 0.02
            if step.kind == "hang":
                return Response(status_code=504)
        if step.kind == "status":
            return Response(status_code=step.status)
        if step.kind == "raw":
            return Response(step.body, status_code=step.status)
        return Response(json.dumps(step.body), status_code=step.status, media_type="application/json")

    def start(self) -> HookServer:
        app = Starlette(routes=[Route("/hook/{name}", self.handle, methods=["POST"])])
        self.server = LiveServer(app).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()


def answer(**fields: Any) -> Behaviour:
    return Behaviour("json", {"call_inbound": fields})
