"""Application errors and how each API surface renders them.

Services raise ``AppError`` subclasses. One exception handler turns them into a response in
the shape of the API the request came through: RFC 9457 problem details for /v1, and each
dialect's own renderer for its path prefix (``install(app, shapes=...)``: the app lists them).
The same error therefore reads naturally to a Twilio, Retell or HelloAnnie client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from numberplane.kernel import jsonbody

log = logging.getLogger("numberplane.errors")


@dataclass
class FieldError:
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


class AppError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"

    @classmethod
    def field(cls, field: str, message: str, code: str = "invalid") -> ValidationFailed:
        return cls(f"{field}: {message}", errors=[FieldError(field, message, code)])

    @classmethod
    def of(cls, errors: list[FieldError]) -> ValidationFailed:
        """Every field error, summed up in the message by the first ten."""
        return cls(summary(errors), errors=errors)


def summary(errors: list[FieldError]) -> str:
    """One line naming the first ten bad fields: what every API surface puts in its message."""
    return "; ".join(f"{e.field}: {e.message}" for e in errors[:10])


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class UpstreamError(AppError):
    status = 502
    code = "carrier_error"
    title = "Carrier error"


@dataclass
class ErrorInfo:
    """A neutral description of an error, handed to whichever shape renders it."""

    status: int
    code: str
    title: str
    message: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


Shape = Callable[[Request, ErrorInfo], Response]
ErrorShape = tuple[str, Shape]  # (path prefix, renderer)


def problem(request: Request, info: ErrorInfo) -> Response:
    body: dict[str, Any] = {
        "type": f"https://numberplane.dev/errors/{info.code}",
        "title": info.title,
        "status": info.status,
        "detail": info.message,
        "code": info.code,
        "instance": request.url.path,
    }
    if info.errors:
        body["errors"] = [e.as_dict() for e in info.errors]
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(info.extra)
    return JSONResponse(
        body, status_code=info.status, headers=info.headers, media_type="application/problem+json"
    )


def render(request: Request, info: ErrorInfo) -> Response:
    """The error in the shape of the API at the request's path (longest prefix wins)."""
    path = request.url.path
    for prefix, shape in getattr(request.app.state, "error_shapes", ()):
        if path.startswith(prefix):
            return shape(request, info)
    return problem(request, info)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        if part.isdigit():
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "body"


def validation_errors(exc: RequestValidationError | Any) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = err.get("loc", ())
        msg = str(err.get("msg", "is invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        errors.append(FieldError(_loc_to_field(loc), msg, str(err.get("type", "invalid"))))
    return errors


def invalid_json(message: str) -> ErrorInfo:
    """A body that is not JSON (or not JSON this API reads): one error, with where."""
    return ErrorInfo(
        400, "invalid_json", "Invalid JSON", message, [FieldError("body", message, "invalid_json")]
    )


def allowed_methods(request: Request) -> str:
    """The ``Allow`` of a 405: every method the app takes at this path (RFC 9110, 15.5.6: the
    target resource's methods). Starlette names the methods of the first route whose path
    matched only, so ``PUT /v1/agents`` said ``Allow: POST`` though ``GET`` is served there too."""
    scope = dict(request.scope)  # matching may write to the scope: a copy, this request's is done
    methods: set[str] = set()
    for route in request.app.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    if "GET" in methods:
        methods.add("HEAD")  # answered as the GET (``kernel.head``)
    return ", ".join(sorted(methods))


def install(app: FastAPI, shapes: Sequence[ErrorShape] = ()) -> None:
    """Render every error raised under ``app``: in ``shapes``' renderer for a path under its
    prefix, otherwise as a problem document."""
    app.state.error_shapes = sorted(shapes, key=lambda item: len(item[0]), reverse=True)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return render(
            request,
            ErrorInfo(exc.status, exc.code, exc.title, exc.message, exc.errors, exc.headers, exc.extra),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                doc = exc.body if isinstance(exc.body, str) else ""
                pos = next((p for p in reversed(err.get("loc", ())) if isinstance(p, int)), 0)
                reason = str((err.get("ctx") or {}).get("error", "invalid JSON"))
                return render(request, invalid_json(jsonbody.at(reason, doc, pos)))
        errors = validation_errors(exc)
        return render(
            request, ErrorInfo(422, "validation_failed", "Validation failed", summary(errors), errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            body = request.scope.get("state", {}).get(jsonbody.BODY_KEY)
            found = jsonbody.problem(body) if isinstance(body, bytes) else None
            return render(request, invalid_json(found or "the body is not valid JSON"))
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        message = str(exc.detail)
        headers = dict(exc.headers or {})
        allowed = allowed_methods(request) if exc.status_code == 405 else ""
        if allowed:  # else the exception's own (a 405 no route's methods explain)
            headers["Allow"] = allowed
        limit = request.scope.get("starlette.max_body_size")
        if exc.status_code == 413 and isinstance(limit, int):  # a body without a length, cut off
            message = f"the request body is too large; this endpoint accepts at most {limit:,} bytes"
        return render(
            request,
            ErrorInfo(exc.status_code, code, str(exc.detail), message, headers=headers),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(
            request,
            ErrorInfo(
                500, "internal_error", "Internal error", "An unexpected error occurred; it has been logged."
            ),
        )
