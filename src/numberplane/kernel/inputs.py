"""Input every API shares: text the databases can store, and JSON a person can fix.

**Storable text.** PostgreSQL's ``text`` and ``jsonb`` hold no NUL (U+0000), and no UTF-8
encoder writes a lone surrogate (U+D800..U+DFFF, which JSON's ``\\ud800`` escape produces):
either one reaching the database is a 500 on PostgreSQL (a surrogate on SQLite too). ``TextGuard``
checks every query parameter, the path, and every JSON or form body before a route sees it, and
answers 422 naming the field, in the shape of the API the request came through
(``errors.render``). So one place covers every schema, every query parameter and every dialect,
and the same input gets the same answer on either database. The rows of a bulk import are the
one exception: each row is judged alone (the import calls ``unstorable`` on it), so a bad row
fails alone and the rest of the batch imports.

The check is cheap where it matters: a body is parsed a second time only when a byte search finds
an escape that could be a NUL or a surrogate (``\\u0000``, ``\\udXXX``), or ``%00`` in a form.
The body read here is kept on the request (``BODY_KEY``), so a body that does not parse can be
explained with its position (``kernel.jsonbody``) without reading it again.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numberplane.kernel import jsonbody
from numberplane.kernel.errors import AppError, ErrorInfo, FieldError, render
from numberplane.kernel.jsonbody import BODY_KEY

M = TypeVar("M", bound=BaseModel)
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_ESCAPES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
MAX_REPORTED = 10


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    found = BAD_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"must not contain NUL (U+0000) characters (one is at character {found.start()})"
    return (
        f"must not contain a lone surrogate (U+{ord(found.group()):04X}, at character {found.start()}): "
        "it is not a character and cannot be stored"
    )


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def unstorable(value: Any, path: str = "", skip: Sequence[str] = ()) -> Iterator[FieldError]:
    """Every place in a decoded JSON value holding text no database can store (keys included).
    Paths under ``skip`` (e.g. ``numbers``: rows judged one by one) are not descended into."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if where in skip:
            continue
        if isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                yield FieldError(where or "body", problem, "unstorable_text")
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if (problem := text_problem(key)) is not None:
                    yield FieldError(where or "body", f"a key {problem}", "unstorable_text")
                stack.append((_join(where, key), child))
        elif isinstance(item, list):
            stack.extend((_join(where, i), child) for i, child in reversed(list(enumerate(item))))


def refusal(errors: list[FieldError]) -> ErrorInfo:
    shown = errors[:MAX_REPORTED]
    message = "; ".join(f"{e.field}: {e.message}" for e in shown)
    return ErrorInfo(422, "validation_failed", "Validation failed", message, shown)


class TextGuard:
    """Refuse text no database can store, before any route (or the database) sees it.

    ``row_paths`` maps (method, path) to the body key whose items are judged one by one
    (a bulk import's rows). ``exempt`` are exact (method, path) pairs left alone (the carrier
    endpoints, whose callers are carriers, not people).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        row_paths: dict[tuple[str, str], str] | None = None,
        exempt: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app = app
        self.row_paths = dict(row_paths or {})
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            info = ErrorInfo(404, "not_found", "Not found", f"{scope['path']!r} not found")
            await render(Request(scope, receive), info)(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query:
            errors = [
                FieldError(name, problem, "unstorable_text")
                for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                for problem in [text_problem(name) or text_problem(value)]
                if problem is not None
            ]
            if errors:
                await render(Request(scope, receive), refusal(errors))(scope, receive, send)
                return
        kind = _body_kind(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # the body limit, counted as the body arrived
            limit = scope.get("starlette.max_body_size")
            message = f"the request body is too large; this endpoint accepts at most {limit:,} bytes"
            info = ErrorInfo(exc.status_code, "payload_too_large", "Content too large", message)
            await render(Request(scope, receive), info)(scope, receive, send)
            return
        scope.setdefault("state", {})[BODY_KEY] = body
        errors = _body_errors(body, kind, self.row_paths.get((scope["method"], scope["path"])))
        if errors:
            await render(Request(scope, receive), refusal(errors))(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _body_kind(scope: Scope) -> str | None:
    if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media == b"application/x-www-form-urlencoded":
                return "form"
            if media == b"application/json" or media.endswith(b"+json"):
                return "json"
            return None
    return "json"  # FastAPI reads a body without a content type as JSON


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _body_errors(body: bytes, kind: str, rows_key: str | None) -> list[FieldError]:
    if kind == "form":
        if b"%00" not in body:
            return []
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        return [
            FieldError(name, problem, "unstorable_text")
            for name, value in pairs
            for problem in [text_problem(name) or text_problem(value)]
            if problem is not None
        ]
    if not _ESCAPES.search(body):
        return []
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return []  # not JSON: the route's parser says so (``json_problem``)
    errors = []
    for error in unstorable(value, skip=(rows_key,) if rows_key else ()):
        errors.append(error)
        if len(errors) >= MAX_REPORTED:
            break
    return errors


async def parse_in_thread(request: Request, model: type[M]) -> M:
    """A large JSON body (a 100,000-row import) parsed and validated in a worker thread, so the
    event loop answering every other request is never held for it. Errors read exactly as
    FastAPI's own parsing would give them (``errors.install`` renders both)."""
    raw = await request.body()
    try:
        return await asyncio.to_thread(model.model_validate_json, raw or b"null")
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            message = jsonbody.problem(raw) or "the body is not valid JSON"
            errors = [FieldError("body", message, "invalid_json")]
            raise AppError(message, code="invalid_json", status=400, errors=errors) from None
        located = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(located) from None
