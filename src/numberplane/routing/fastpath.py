"""The carrier endpoints as a pure-ASGI fast path in front of the FastAPI app.

A routing answer should cost little more than the server stack itself. FastAPI's routing and
the ``@app.middleware("http")`` layer (BaseHTTPMiddleware) cost several times the whole
decision, so requests for the carrier endpoints (``handlers.ENDPOINTS``: exact method and path)
are answered here, before them, by the same handlers the FastAPI routes use; everything else
goes on to the app unchanged. ``GET /v1/route`` (the SIP platforms' routing path) is answered
here too when its key is already in the key cache and its query is well-formed
(``api_route.lean``); otherwise the FastAPI view answers it. Installed at startup
(``install``); without it (an app served without its lifespan, as in some tests) the FastAPI
routes answer the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from numberplane.kernel.deps import request_id
from numberplane.routing import api_route
from numberplane.routing.handlers import ENDPOINTS, MAX_BODY, Incoming, Outgoing, dispatch

log = logging.getLogger("numberplane.routing")

Scope = dict[str, Any]


class _Headers(Mapping[str, str]):
    """The ASGI header list as a mapping, indexed on first use. ASGI servers send names in lower
    case (the specification requires it), so names are matched as given; the first value of a
    repeated header wins."""

    __slots__ = ("_index", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._index: dict[bytes, bytes] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        index = self._index
        if index is None:
            index = self._index = {key: value for key, value in reversed(self._raw)}
        value = index.get(name.encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return (key.decode("latin-1") for key, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class VoiceFastPath:
    def __init__(self, inner: Any, app: Any) -> None:
        self.inner = inner
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in ENDPOINTS:
            if scope.get("path") == api_route.PATH and scope["type"] == "http" and scope["method"] == "GET":
                if await self._route(scope, send):
                    return
            await self.inner(scope, receive, send)
            return
        headers = _Headers(scope["headers"])
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:  # refused like any unverifiable request: a bare 403
                await self._send(send, Outgoing(403), headers)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        raw_path = scope.get("raw_path")
        incoming = Incoming(
            app=self.app,
            method=scope["method"],
            path=scope["path"],
            raw_path=raw_path.decode("latin-1") if raw_path else scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=b"".join(chunks),
        )
        try:
            out = await dispatch(incoming)
        except Exception:
            log.exception("routing request %s %s failed", scope["method"], scope["path"])
            out = Outgoing(500)
        await self._send(send, out or Outgoing(404), headers)

    async def _route(self, scope: Scope, send: Any) -> bool:
        """``GET /v1/route`` answered here when it can be whole (``api_route.lean``); False sends
        it on to the FastAPI view. Nothing has been read or sent then, so the view answers as if
        this were not here: its error shapes, its key lookup, its 500."""
        headers = _Headers(scope["headers"])
        if headers.get("content-length") not in (None, "0") or headers.get("transfer-encoding"):
            return False
        try:
            lean = await api_route.lean(self.app, scope.get("query_string", b"").decode("latin-1"), headers)
        except Exception:
            log.exception("lean /v1/route failed; the view answers instead")
            return False
        if lean is None:
            return False
        await self._send(send, lean[0], headers, lean[1])
        return True

    @staticmethod
    async def _send(
        send: Any, out: Outgoing, headers: Mapping[str, str], extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        rid = request_id(headers.get("x-request-id"))
        response_headers = [
            (b"content-length", str(len(out.body)).encode()),
            (b"x-request-id", rid.encode()),
        ]
        if out.media_type:
            response_headers.append((b"content-type", out.media_type.encode()))
        if extra:
            response_headers.extend(extra)
        await send({"type": "http.response.start", "status": out.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": out.body})


def install(app: Any) -> None:
    """Put the fast path in front of ``app``'s middleware stack (once)."""
    stack = app.middleware_stack
    if stack is None:
        stack = app.build_middleware_stack()
    if not isinstance(stack, VoiceFastPath):
        app.middleware_stack = VoiceFastPath(stack, app)
