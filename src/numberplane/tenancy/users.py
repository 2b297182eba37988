"""Console users and their sessions.

A user is an email, an argon2id password hash (argon2-cffi) and a role in one org. A session is
a random token in an HttpOnly cookie; only its SHA-256 is stored, so a database read does not
yield a usable cookie. Signing out or removing the user deletes the row: the next request with
that cookie is a stranger's. Failed sign-ins are rows too, counted per email and per address
over a window, so every server process enforces the same limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel
from sqlalchemy import delete, func, or_, select

from numberplane.kernel.db import Actor, Database, UnitOfWork, as_utc, utcnow
from numberplane.kernel.errors import AppError, Conflict, NotFound, Unauthorized, ValidationFailed
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import audit
from numberplane.tenancy.models import Org, SignInFailure, User, UserSession

Role = Literal["owner", "admin", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
SESSION_TTL = dt.timedelta(hours=12)
FAILURE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 20
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_LISTED = 10_000

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$|^[^@\s]{1,64}@localhost$")
# argon2id (the library's default type) with its recommended parameters (RFC 9106, low memory).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the email is unknown, so a missing user takes as long as a wrong password.
    Made on first use: hashing costs ~170 ms, which every process importing this module (each
    CLI command, each server start) would otherwise pay."""
    return _hasher.hash(secrets.token_urlsafe(16))


class TooManyAttempts(AppError):
    status = 429
    code = "too_many_attempts"
    title = "Too many attempts"


class UserRead(BaseModel):
    id: str
    org_id: str
    email: str
    role: str
    created_at: dt.datetime


@dataclass(frozen=True)
class SessionUser:
    """Who a console request is: the user, their org and role, and the session's CSRF token."""

    user_id: str
    email: str
    org_id: str
    role: str
    csrf_token: str

    @property
    def can_change(self) -> bool:
        return self.role in ("owner", "admin")

    def actor(self, request_id: str | None = None) -> Actor:
        """Changes made in the console are audited as this person: ``actor_id`` is their email."""
        return Actor(kind="user", id=self.email, org_id=self.org_id, via="console", request_id=request_id)


@dataclass(frozen=True)
class SignedIn:
    token: str  # the cookie's value; shown to nobody else and never stored
    user: SessionUser


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    value = (email or "").strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValidationFailed.field("email", "must be an email address such as ana@example.com")
    return value


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed.field("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed.field("password", f"must be at most {MAX_PASSWORD} characters")


def _read(user: User) -> UserRead:
    return UserRead(
        id=user.id,
        org_id=user.org_id,
        email=user.email,
        role=user.role,
        created_at=as_utc(user.created_at) or utcnow(),
    )


async def hash_password(password: str) -> str:
    """argon2id, off the event loop (it costs tens of milliseconds of CPU by design)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


async def create_user(*, uow: UnitOfWork, org_id: str, email: str, role: str, password: str) -> UserRead:
    email = normalize_email(email)
    if role not in ROLES:
        raise ValidationFailed.field("role", f"must be one of {', '.join(ROLES)}")
    check_password(password)
    if await uow.session.get(Org, org_id) is None:
        raise NotFound(f"org {org_id} not found", code="org_not_found")
    if await uow.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists", code="user_exists")
    user = User(
        id=new_id(),
        org_id=org_id,
        email=email,
        role=role,
        password_hash=await hash_password(password),
        created_at=utcnow(),
    )
    uow.session.add(user)
    await uow.session.flush()
    audit(
        uow,
        action="user.created",
        target_type="user",
        target_id=user.id,
        after={"email": email, "role": role},
        org_id=org_id,
    )
    return _read(user)


async def list_users(*, db: Database, org_id: str | None = None, limit: int = 1000) -> list[UserRead]:
    """Users oldest first (one org's, or everyone's for the operator); never a password hash."""
    query = select(User).order_by(User.created_at, User.id).limit(min(limit, MAX_LISTED))
    if org_id is not None:
        query = query.where(User.org_id == org_id)
    async with db.session() as session:
        return [_read(u) for u in await session.scalars(query)]


async def count_users(*, db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def remove_user(*, uow: UnitOfWork, user: str, org_id: str | None = None) -> UserRead:
    """Remove a user (by email or id) and end every session they have, in one transaction."""
    query = select(User).where(or_(User.id == user[:64], User.email == user.strip().lower()[:254]))
    if org_id is not None:
        query = query.where(User.org_id == org_id)
    row = await uow.session.scalar(query)
    if row is None:
        raise NotFound(f"user {user} not found", code="user_not_found")
    read = _read(row)
    await uow.session.execute(delete(UserSession).where(UserSession.user_id == row.id))
    await uow.session.delete(row)
    audit(
        uow,
        action="user.removed",
        target_type="user",
        target_id=row.id,
        before={"email": row.email, "role": row.role},
        org_id=row.org_id,
    )
    return read


async def _refuse_if_limited(db: Database, email: str, address: str) -> None:
    since = utcnow() - FAILURE_WINDOW
    async with db.session() as session:
        by_email = await session.scalar(
            select(func.count())
            .select_from(SignInFailure)
            .where(SignInFailure.email == email, SignInFailure.at >= since)
        )
        by_address = await session.scalar(
            select(func.count())
            .select_from(SignInFailure)
            .where(SignInFailure.address == address, SignInFailure.at >= since)
        )
    if (by_email or 0) >= MAX_FAILURES_PER_EMAIL or (by_address or 0) >= MAX_FAILURES_PER_ADDRESS:
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        raise TooManyAttempts(
            f"too many failed sign-ins; try again in {minutes} minutes",
            headers={"Retry-After": str(int(FAILURE_WINDOW.total_seconds()))},
        )


async def sign_in(*, db: Database, email: str, password: str, address: str) -> SignedIn:
    """A new session for the right email and password; 401 otherwise, 429 after too many failures
    for this email or from this address (checked before the password, so guessing stops)."""
    email = (email or "").strip().lower()[:254]
    address = (address or "unknown")[:64]
    password = (password or "")[:MAX_PASSWORD]
    await _refuse_if_limited(db, email, address)
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.email == email))
    ok = await _verify(user.password_hash if user else await asyncio.to_thread(_dummy_hash), password)
    if user is None or not ok:
        async with db.uow(Actor.system()) as uow:
            uow.session.add(SignInFailure(email=email, address=address, at=utcnow()))
            # Old rows are no use to the limit: each failure clears a few expired ones (bounded).
            stale = select(SignInFailure.id).where(SignInFailure.at < utcnow() - FAILURE_WINDOW).limit(100)
            await uow.session.execute(delete(SignInFailure).where(SignInFailure.id.in_(stale)))
            await uow.commit()
        raise Unauthorized("wrong email or password", code="sign_in_failed")
    token = secrets.token_urlsafe(32)
    signed = SessionUser(
        user_id=user.id,
        email=user.email,
        org_id=user.org_id,
        role=user.role,
        csrf_token=secrets.token_urlsafe(32),
    )
    async with db.uow(signed.actor()) as uow:
        now = utcnow()
        uow.session.add(
            UserSession(
                id=_token_hash(token),
                user_id=user.id,
                csrf_token=signed.csrf_token,
                address=address,
                created_at=now,
                expires_at=now + SESSION_TTL,
            )
        )
        await uow.session.execute(delete(SignInFailure).where(SignInFailure.email == email))
        # Expired sessions are no use to anyone: each sign-in clears a few (bounded).
        expired = select(UserSession.id).where(UserSession.expires_at < now).limit(100)
        await uow.session.execute(delete(UserSession).where(UserSession.id.in_(expired)))
        audit(uow, action="user.signed_in", target_type="user", target_id=user.id, org_id=user.org_id)
        await uow.commit()
    return SignedIn(token=token, user=signed)


async def session_user(*, db: Database, token: str | None) -> SessionUser | None:
    """The user behind a session cookie, or None (no such session, expired, or the user removed)."""
    if not token or len(token) > 100:
        return None
    async with db.session() as session:
        row = (
            await session.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.id == _token_hash(token))
            )
        ).first()
    if row is None:
        return None
    sess, user = row
    expires = as_utc(sess.expires_at)
    if expires is None or expires <= utcnow():
        return None
    return SessionUser(
        user_id=user.id, email=user.email, org_id=user.org_id, role=user.role, csrf_token=sess.csrf_token
    )


async def sign_out(*, db: Database, token: str, user: SessionUser) -> None:
    """End this session now: the cookie is worthless from the next request on."""
    async with db.uow(user.actor()) as uow:
        await uow.session.execute(delete(UserSession).where(UserSession.id == _token_hash(token)))
        audit(uow, action="user.signed_out", target_type="user", target_id=user.user_id, org_id=user.org_id)
        await uow.commit()
