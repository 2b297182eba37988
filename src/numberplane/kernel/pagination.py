"""Keyset pagination, written once for every list.

Ids are UUIDv7, so "after this id" is a stable position that costs the same at page 10,000 as
at page 1 (an index seek, never an OFFSET scan). A list builds its query, lets ``keyset`` order
it and start after the cursor, runs it, and hands the rows to ``page``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select

from numberplane.kernel.errors import ValidationFailed

MAX_LIMIT = 1000
# Page numbers and offsets of the APIs that page by number: bounded, so page x size stays far
# inside a 64-bit integer (an unbounded one reached the database as an overflow, a 500).
MAX_PAGE = 1_000_000
MAX_OFFSET = 1_000_000_000

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None = None


def encode_cursor(last_id: str, direction: str = "desc") -> str:
    raw = json.dumps({"after": last_id, "dir": direction}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, direction = str(data["after"]), str(data.get("dir", "desc"))
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValidationFailed.field(field, "is not a cursor this API issued") from exc
    if direction not in ("asc", "desc") or len(after) > 64:
        raise ValidationFailed.field(field, "is not a cursor this API issued")
    return after, direction


def check_limit(limit: int, field: str = "limit") -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise ValidationFailed.field(field, f"must be between 1 and {MAX_LIMIT}")
    return limit


def keyset(query: Select[Any], id_column: Any, *, limit: int, cursor: str | None) -> Select[Any]:
    """``query`` newest first, after ``cursor``, with one row more than ``limit`` (to tell if
    there is a next page)."""
    check_limit(limit)
    if cursor:
        after, _ = decode_cursor(cursor)
        query = query.where(id_column < after)
    return query.order_by(id_column.desc()).limit(limit + 1)


def page(rows: Sequence[Any], *, limit: int, read: Callable[[Any], T], direction: str = "desc") -> Page[T]:
    """The page for rows fetched with ``limit + 1``: the first ``limit`` read, and a cursor after
    the last one when there were more."""
    more = len(rows) > limit
    shown = rows[:limit]
    return Page[Any](
        data=[read(r) for r in shown],
        has_more=more,
        next_cursor=encode_cursor(shown[-1].id, direction) if more and shown else None,
    )
