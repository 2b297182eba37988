"""Request body limits: an oversized body is refused with 413 before anything parses it.

Each route has a limit (``Settings.max_body_bytes``; bulk routes such as the 100,000-row import
take ``Settings.max_bulk_body_bytes``). A ``Content-Length`` over the limit is answered at once,
without reading a byte, in the error shape of the API the request came to
(``errors.render``). A body sent without a length is counted as it arrives by Starlette's
``RequestBodyLimitMiddleware``: the moment it passes the limit the read fails with a 413
``HTTPException``, which the app's handler renders in the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from numberplane.kernel.errors import ErrorInfo, render

CODE = "payload_too_large"
TITLE = "Content too large"


def too_large_message(limit: int, size: int | None = None) -> str:
    said = f"the request body is {size:,} bytes; " if size is not None else "the request body is too large; "
    return said + f"this endpoint accepts at most {limit:,} bytes"


class BodyLimits:
    """Per-route body limits (exact method and path; everything else gets ``default``)."""

    def __init__(
        self, app: ASGIApp, *, default: int, routes: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes or {})
        self._limited: dict[int, ASGIApp] = {}
        for limit in {default, *self.routes.values()}:
            self._limited[limit] = RequestBodyLimitMiddleware(app, max_body_size=limit)

    def limit_for(self, method: str, path: str) -> int:
        return self.routes.get((method, path), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        size = _content_length(scope)
        if size is not None and size > limit:
            request = Request(scope, receive)
            response = render(request, ErrorInfo(413, CODE, TITLE, too_large_message(limit, size)))
            response.headers["Connection"] = "close"  # the body is never read
            await response(scope, receive, send)
            return
        await self._limited[limit](scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
