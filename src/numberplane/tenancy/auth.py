"""One key, three presentations: ``Bearer <key_id>.<secret>``, ``X-API-KEY``/``X-API-SECRET``,
and HTTP Basic ``key_id:secret``. Every API surface (v1 and each dialect) uses this."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from fastapi import Request

from numberplane.kernel.deps import Principal
from numberplane.kernel.errors import Unauthorized
from numberplane.tenancy import service
from numberplane.tenancy.keycache import KeyCache

__all__ = ["Principal", "credentials_from", "credentials_in", "require_principal"]


def credentials_from(request: Request) -> tuple[str, str] | None:
    """(key_id, secret) from whichever presentation the request uses, or None."""
    return credentials_in(request.headers)


def credentials_in(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``credentials_from`` over any header mapping with lower-case names (the fast path's)."""
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        key_id, dot, secret = value.partition(".")
        return (key_id, secret) if dot else None
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        key_id, colon, secret = decoded.partition(":")
        return (key_id, secret) if colon else None
    header_key = headers.get("x-api-key")
    header_secret = headers.get("x-api-secret")
    if header_key and header_secret:
        return header_key.strip(), header_secret.strip()
    return None


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated key's org, or 401 in the API's own error shape."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    creds = credentials_from(request)
    if creds is None:
        raise Unauthorized(
            "missing or malformed credentials: send Authorization: Bearer <token>, "
            "X-API-KEY and X-API-SECRET, or HTTP Basic key_id:secret",
            headers={"WWW-Authenticate": 'Bearer realm="numberplane"'},
        )
    state = request.app.state
    keys: KeyCache | None = getattr(state, "keys", None)
    principal: Principal | None
    if keys is not None:
        principal = await keys.authenticate(state.db, *creds)
    else:  # an app assembled without a key cache: one query per request
        async with state.db.session() as session:
            key = await service.authenticate(session, *creds)
        principal = None if key is None else Principal(org_id=key.org_id, key_id=key.id)
    if principal is None:
        raise Unauthorized(
            "invalid or revoked API key", headers={"WWW-Authenticate": 'Bearer realm="numberplane"'}
        )
    request.state.principal = principal
    return principal
