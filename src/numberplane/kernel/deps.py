"""Request-scoped helpers for views: the database, and a unit of work acting as the caller."""

from __future__ import annotations

import re
from dataclasses import dataclass
from random import getrandbits

from fastapi import Request

from numberplane.kernel.db import Actor, Database

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(incoming: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is well-formed, otherwise a new one.

    A correlation id, not a secret: 64 bits from ``random`` (no system call per request, as
    ``secrets`` makes; reseeded in every forked worker)."""
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return f"req_{getrandbits(64):016x}"


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as: an API key of an org (``tenancy.auth`` verifies it)."""

    org_id: str
    key_id: str


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def actor_for(request: Request, principal: Principal, via: str = "v1") -> Actor:
    return Actor(
        kind="api_key",
        id=principal.key_id,
        org_id=principal.org_id,
        via=via,
        request_id=getattr(request.state, "request_id", None),
    )
