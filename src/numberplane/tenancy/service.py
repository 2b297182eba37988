"""Orgs and API keys.

A key is ``key_id`` plus a random secret; the bearer token is ``<key_id>.<secret>``. Only
SHA-256 of the secret is stored: the secret is 256 random bits, so a fast hash is enough and
every request can afford it (a password hash would cost milliseconds per request for nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.kernel.changes import api_keys_changed
from numberplane.kernel.db import Database, UnitOfWork, as_utc, utcnow
from numberplane.kernel.errors import NotFound
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import audit
from numberplane.tenancy.models import ApiKey, Org
from numberplane.tenancy.schemas import CreatedKey, KeyRead, OrgRead

KEY_PREFIX = "key_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def _new_key_id() -> str:
    return KEY_PREFIX + secrets.token_hex(12)


async def create_org(*, uow: UnitOfWork, name: str) -> tuple[Org, CreatedKey]:
    """A new org with its first key. Its sandbox carrier account comes with it through
    ``carriers.service.open_org``, which is how orgs are opened."""
    org = Org(id=new_id(), name=name, created_at=utcnow())
    uow.session.add(org)
    await uow.session.flush()
    key = await create_key(uow=uow, org_id=org.id, name="first key")
    audit(uow, action="org.created", target_type="org", target_id=org.id, after={"name": name}, org_id=org.id)
    return org, key


async def create_key(*, uow: UnitOfWork, org_id: str, name: str | None = None) -> CreatedKey:
    if await uow.session.get(Org, org_id) is None:
        raise NotFound(f"org {org_id} not found", code="org_not_found")
    key_id = _new_key_id()
    secret = secrets.token_urlsafe(32)
    uow.session.add(ApiKey(id=key_id, org_id=org_id, name=name, secret_hash=hash_secret(secret)))
    audit(uow, action="api_key.created", target_type="api_key", target_id=key_id, org_id=org_id)
    api_keys_changed(uow, [key_id])  # a key cache may hold this id as unknown
    return CreatedKey(org_id=org_id, key_id=key_id, secret=secret, token=f"{key_id}.{secret}")


async def revoke_key(*, uow: UnitOfWork, key_id: str, org_id: str | None = None) -> ApiKey:
    key = await uow.session.get(ApiKey, key_id)
    if key is None or (org_id is not None and key.org_id != org_id):
        raise NotFound(f"api key {key_id} not found", code="api_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(uow, action="api_key.revoked", target_type="api_key", target_id=key_id, org_id=key.org_id)
        api_keys_changed(uow, [key_id])  # every process's key cache drops it
    return key


def well_formed(key_id: str, secret: str) -> bool:
    """Credentials that could be a key's (anything else is refused without a lookup)."""
    return key_id.startswith(KEY_PREFIX) and len(key_id) <= 40 and len(secret) <= 200


async def live_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    """The key ``key_id`` unless it is missing or revoked (its secret not checked)."""
    key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id))
    return None if key is None or key.revoked_at is not None else key


async def authenticate(session: AsyncSession, key_id: str, secret: str) -> ApiKey | None:
    """The live key for these credentials, or None. Constant-time on the secret."""
    if not well_formed(key_id, secret):
        return None
    key = await live_key(session, key_id)
    if key is None:
        return None
    if not secret_matches(secret, key.secret_hash):
        return None
    return key


MAX_LISTED = 10_000


async def list_orgs(*, db: Database, limit: int = 1000) -> list[OrgRead]:
    """Every org, oldest first (bounded: ``limit``, at most ``MAX_LISTED``)."""
    async with db.session() as session:
        rows = await session.scalars(select(Org).order_by(Org.id).limit(min(limit, MAX_LISTED)))
        return [
            OrgRead(
                id=o.id,
                name=o.name,
                default_carrier_account_id=o.default_carrier_account_id,
                created_at=as_utc(o.created_at) or utcnow(),
            )
            for o in rows
        ]


async def list_keys(*, db: Database, org_id: str, limit: int = 1000) -> list[KeyRead]:
    """An org's API keys, oldest first, revoked ones included; never a secret or its hash."""
    async with db.session() as session:
        if await session.get(Org, org_id) is None:
            raise NotFound(f"org {org_id} not found", code="org_not_found")
        rows = await session.scalars(
            select(ApiKey)
            .where(ApiKey.org_id == org_id)
            .order_by(ApiKey.created_at, ApiKey.id)
            .limit(min(limit, MAX_LISTED))
        )
        return [
            KeyRead(
                id=k.id,
                org_id=k.org_id,
                name=k.name,
                created_at=as_utc(k.created_at) or utcnow(),
                revoked_at=as_utc(k.revoked_at),
            )
            for k in rows
        ]
