"""Request-scoped helpers for views: the database, and a unit of work acting as the caller."""

from __future__ import annotations

from fastapi import Request

from numberplane.kernel.db import Actor, Database, UnitOfWork
from numberplane.tenancy.auth import Principal


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


def uow_for(request: Request, principal: Principal, via: str = "v1") -> UnitOfWork:
    """A unit of work whose audit rows name this key, this API surface and this request."""
    return get_db(request).uow(actor_for(request, principal, via))
