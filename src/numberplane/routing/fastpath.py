"""The carrier endpoints as a pure-ASGI fast path in front of the FastAPI app.

A routing answer should cost little more than the server stack itself. FastAPI's routing and
the ``@app.middleware("http")`` layer (BaseHTTPMiddleware) cost several times the whole
decision, so requests for the carrier endpoints (``handlers.ENDPOINTS``: exact method and path)
are answered here, before them, by the same handlers the FastAPI routes use; everything else
goes on to the app unchanged. ``GET /v1/route`` (the SIP platforms' routing path) is answered
here too when its key is already in the key cache and its query is well-formed
(``api_route.lean``); otherwise the FastAPI view answers it. Installed at startup
(``install``); without it (an app served without its lifespan, as in some tests) the FastAPI
routes answer the same way. ``install`` also offers the same requests to the server's protocol
(``DirectAnswer``, ``kernel.serving.HttpProtocol``), which answers them without ASGI by the same
``VoiceFastPath.answer``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

from numberplane.kernel.deps import request_id
from numberplane.kernel.serving import Answer
from numberplane.routing import api_route
from numberplane.routing.handlers import ENDPOINTS, MAX_BODY, Incoming, Outgoing, dispatch
from numberplane.routing.service import Router, router_of

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
        self._router: Router | None = None  # the app's, found on first use (one per app)

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
        status, response_headers, body = await self.answer(scope, b"".join(chunks), headers)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, body: bytes, headers: _Headers | None = None) -> Answer:
        """A carrier endpoint's whole answer to a request read whole: (status, headers, body).
        The server's protocol calls it directly (``kernel.serving``: no ASGI task, no messages)."""
        if headers is None:
            headers = _Headers(scope["headers"])
        raw_path = scope.get("raw_path")
        router = self._router
        if router is None:
            router = self._router = router_of(self.app)
        # Positional (the fields' order): a class called with keywords packs them into a dict.
        incoming = Incoming(
            router,
            scope["method"],
            scope["path"],
            raw_path.decode("latin-1") if raw_path else scope["path"],  # raw_path
            scope.get("query_string", b"").decode("latin-1"),  # query
            headers,
            body,
        )
        try:
            answer = dispatch(incoming)
            out = Outgoing(404) if answer is None else await answer
        except Exception:
            log.exception("routing request %s %s failed", scope["method"], scope["path"])
            out = Outgoing(500)
        return out.status, _response_headers(out, headers), out.body

    async def _route(self, scope: Scope, send: Any) -> bool:
        """``GET /v1/route`` answered here when it can be whole (``api_route.lean``); False sends
        it on to the FastAPI view. Nothing has been read or sent then, so the view answers as if
        this were not here: its error shapes, its key lookup, its 500."""
        answer = await self.route_answer(scope)
        if answer is None:
            return False
        status, response_headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def route_answer(self, scope: Scope, body: bytes = b"") -> Answer | None:
        """``GET /v1/route``'s whole answer when the lean path can give it; None: the view's."""
        headers = _Headers(scope["headers"])
        if body or headers.get("content-length") not in (None, "0") or headers.get("transfer-encoding"):
            return None
        try:
            lean = await api_route.lean(self.app, scope.get("query_string", b"").decode("latin-1"), headers)
        except Exception:
            log.exception("lean /v1/route failed; the view answers instead")
            return None
        if lean is None:
            return None
        out, extra = lean
        return out.status, [*_response_headers(out, headers), *extra], out.body

    @staticmethod
    async def _send(send: Any, out: Outgoing, headers: Mapping[str, str]) -> None:
        response_headers = _response_headers(out, headers)
        await send({"type": "http.response.start", "status": out.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": out.body})


def _response_headers(out: Outgoing, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    rid = request_id(headers.get("x-request-id"))
    response_headers = [
        (b"content-length", str(len(out.body)).encode()),
        (b"x-request-id", rid.encode()),
    ]
    if out.media_type:
        response_headers.append((b"content-type", out.media_type.encode()))
    return response_headers


def install(app: Any) -> None:
    """Put the fast path in front of ``app``'s middleware stack (once)."""
    stack = app.middleware_stack
    if stack is None:
        stack = app.build_middleware_stack()
    if not isinstance(stack, VoiceFastPath):
        stack = app.middleware_stack = VoiceFastPath(stack, app)
    app.state.direct_answer = DirectAnswer(stack)


class DirectAnswer:
    """The fast path's requests, for the server's protocol to answer without ASGI
    (``kernel.serving.HttpProtocol``): the same answers as ``VoiceFastPath``'s, by the same code."""

    endpoints = frozenset({*ENDPOINTS, ("GET", api_route.PATH)})
    max_body = MAX_BODY

    def __init__(self, path: VoiceFastPath) -> None:
        self.path = path

    def __call__(self, scope: Scope, body: bytes) -> Awaitable[Answer | None]:
        if scope["path"] == api_route.PATH:
            return self.path.route_answer(scope, body)
        return self.path.answer(scope, body)
