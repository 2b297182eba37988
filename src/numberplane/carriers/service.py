"""Carrier accounts: create (checking the credentials at the carrier), list, read, delete, default.

An org sees its own accounts and the platform-wide ones (``org_id`` NULL, set by the operator
with ``numberplane carriers add-platform``). Another org's account answers exactly like a
missing one. Credentials are Fernet-encrypted JSON and never leave this module except to the
adapter (``registry.credentials_of``).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import or_, select

from numberplane.carriers import registry
from numberplane.carriers.base import CarrierAuthError, CarrierError, CarrierUnavailable
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.schemas import ROUTING_ONLY, CarrierAccountCreate, CarrierAccountRead
from numberplane.carriers.vonage import VonageAccountCheck
from numberplane.kernel.changes import accounts_changed
from numberplane.kernel.crypto import SecretKeyError, encrypt
from numberplane.kernel.db import Actor, Database, UnitOfWork, as_utc, utcnow
from numberplane.kernel.errors import AppError, Conflict, Forbidden, NotFound, UpstreamError
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import audit
from numberplane.tenancy import service as tenancy
from numberplane.tenancy.models import Org
from numberplane.tenancy.schemas import CreatedKey

log = logging.getLogger("numberplane.carriers")

DISPLAY = {"twilio": "Twilio", "telnyx": "Telnyx", "signalwire": "SignalWire", "vonage": "Vonage"}
MAX_ACCOUNTS_LISTED = 500

# (session, account_id) -> {"numbers": n} or {"orders": n} of what still uses it; {} when nothing.
AccountUsers = Callable[[Any, str], Awaitable[dict[str, int]]]


async def open_org(*, uow: UnitOfWork, name: str) -> tuple[Org, CreatedKey]:
    """A new org with its first key (tenancy) and its own sandbox carrier account as its
    default, so a fresh org can search and buy at once."""
    org, key = await tenancy.create_org(uow=uow, name=name)
    sandbox = CarrierAccount(
        id=new_id(),
        org_id=org.id,
        carrier="sandbox",
        name="Sandbox",
        config={"account_sid": "SB" + secrets.token_hex(16)},
        credentials_enc=encrypt(json.dumps({"auth_token": secrets.token_hex(16)})),
    )
    uow.session.add(sandbox)
    org.default_carrier_account_id = sandbox.id
    await uow.session.flush()
    return org, key


def display(carrier: str) -> str:
    return DISPLAY.get(carrier, carrier)


def _secret_names(account: CarrierAccount) -> tuple[list[str], list[str]]:
    try:
        return sorted(registry.credentials_of(account)), []
    except (SecretKeyError, ValueError):
        return [], ["the stored secrets cannot be decrypted with the configured NUMBERPLANE_SECRET_KEY"]


def to_read(
    account: CarrierAccount, *, default_id: str | None, warnings: list[str] | None = None
) -> CarrierAccountRead:
    names, problems = _secret_names(account)
    return CarrierAccountRead(
        id=account.id,
        carrier=account.carrier,
        name=account.name,
        scope="platform" if account.org_id is None else "org",
        config=dict(account.config or {}),
        secrets_set=names,
        routing_only=account.carrier in ROUTING_ONLY,
        is_default=default_id == account.id,
        status=account.status,
        warnings=[*(warnings or []), *problems],
        created_at=as_utc(account.created_at) or utcnow(),
        updated_at=as_utc(account.updated_at) or utcnow(),
    )


def _public(account: CarrierAccount) -> dict[str, Any]:
    """What an audit row may say about an account: never a secret."""
    return {"carrier": account.carrier, "name": account.name, "config": dict(account.config or {})}


def verification_error(exc: CarrierError) -> AppError:
    """A failed credential check, as an API error that names the carrier and says what to fix."""
    name = display(exc.carrier)
    extra = {"carrier": exc.carrier}
    if isinstance(exc, CarrierAuthError):
        return UpstreamError(
            f"{exc.message}. Check the credentials you gave for {name}.",
            code="carrier_auth_failed",
            status=424,
            extra=extra,
        )
    if isinstance(exc, CarrierUnavailable):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return UpstreamError(
            f"the credentials could not be checked: {exc.message}",
            code="carrier_unavailable",
            status=424,
            headers=headers,
            extra={**extra, "retriable": True},
        )
    return UpstreamError(
        f"{name} did not accept the account: {exc.message}", code=exc.code, status=424, extra=extra
    )


async def verify(account: CarrierAccount, *, db: Database) -> None:
    """One cheap authenticated call at the carrier, which also proves that the credentials own the
    identifiers the carrier's webhooks will name (account SID, project, application, API key)."""
    checker: Any
    if account.carrier == "vonage":  # routing-only: no adapter, just the account check
        checker = VonageAccountCheck(account=account, credentials=registry.credentials_of(account))
    else:
        checker = registry.adapter_for(account, db=db)
    try:
        await checker.verify_credentials()
    except CarrierError as exc:
        log.info("credential check for a new %s account failed: %s", account.carrier, exc.code)
        raise verification_error(exc) from exc


async def create_account(
    *, db: Database, actor: Actor, org_id: str | None, data: CarrierAccountCreate, check: bool = True
) -> CarrierAccountRead:
    """Store a carrier account for ``org_id`` (None: platform-wide) after checking its credentials."""
    public, secrets = data.split()
    now = utcnow()
    account = CarrierAccount(
        id=new_id(),
        org_id=org_id,
        carrier=data.carrier,
        name=data.name,
        config=public,
        credentials_enc=encrypt(json.dumps(secrets)),
        status="active",
        created_at=now,
        updated_at=now,
    )
    if check:
        await verify(account, db=db)  # before any transaction: no row lock held over a network call
    if data.make_default and org_id is None:
        raise Conflict("a platform account cannot be made an org's default here", code="invalid_default")
    if data.make_default and data.carrier in ROUTING_ONLY:
        raise Conflict(
            f"a {display(data.carrier)} account is routing-only (numbers are imported onto it, never "
            "bought), so it cannot be the default for buying",
            code="routing_only_account",
        )
    async with db.uow(actor) as uow:
        default_id = None
        if org_id is not None:
            org = await uow.session.get(Org, org_id)
            if org is None:
                raise NotFound(f"org {org_id} not found", code="org_not_found")
            default_id = org.default_carrier_account_id
        uow.session.add(account)
        if data.make_default and org_id is not None:
            await uow.session.flush()
            _set_default(uow, org, account)  # type: ignore[arg-type]
            default_id = account.id
        audit(
            uow,
            action="carrier_account.created",
            target_type="carrier_account",
            target_id=account.id,
            after=_public(account),
            org_id=org_id,
        )
        await uow.commit()
    return to_read(account, default_id=default_id, warnings=data.warnings())


async def visible_account(session: Any, *, org_id: str, account_id: str) -> CarrierAccount:
    """The account if it is the org's own or platform-wide; otherwise exactly like a missing one."""
    account = await session.get(CarrierAccount, account_id) if len(account_id) <= 64 else None
    if account is None or account.org_id not in (None, org_id) or account.status == "deleted":
        raise NotFound(f"carrier account {account_id} not found", code="carrier_account_not_found")
    return account  # type: ignore[no-any-return]


async def _default_id(session: Any, org_id: str) -> str | None:
    org = await session.get(Org, org_id)
    return org.default_carrier_account_id if org is not None else None


async def list_accounts(*, db: Database, org_id: str) -> list[CarrierAccountRead]:
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(CarrierAccount)
                .where(
                    or_(CarrierAccount.org_id == org_id, CarrierAccount.org_id.is_(None)),
                    CarrierAccount.status != "deleted",
                )
                .order_by(CarrierAccount.id)
                .limit(MAX_ACCOUNTS_LISTED)
            )
        )
        default_id = await _default_id(session, org_id)
    return [to_read(a, default_id=default_id) for a in rows]


async def list_platform_accounts(*, db: Database) -> list[CarrierAccountRead]:
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(CarrierAccount)
                .where(CarrierAccount.org_id.is_(None), CarrierAccount.status != "deleted")
                .order_by(CarrierAccount.id)
                .limit(MAX_ACCOUNTS_LISTED)
            )
        )
    return [to_read(a, default_id=None) for a in rows]


async def get_account(*, db: Database, org_id: str, account_id: str) -> CarrierAccountRead:
    async with db.session() as session:
        account = await visible_account(session, org_id=org_id, account_id=account_id)
        default_id = await _default_id(session, org_id)
    return to_read(account, default_id=default_id)


async def delete_account(*, db: Database, actor: Actor, account_id: str, in_use: AccountUsers) -> None:
    """Forget an org's account. Refused while numbers or purchases still use it (``in_use``
    says: ``numbers.service.account_users``; carriers sit below numbers)."""
    assert actor.org_id is not None
    async with db.uow(actor) as uow:
        account = await visible_account(uow.session, org_id=actor.org_id, account_id=account_id)
        if account.org_id is None:
            raise Forbidden(
                "platform-wide accounts are managed by the operator (numberplane carriers ...)",
                code="platform_account",
            )
        if account.carrier == "sandbox":
            raise Conflict("the built-in sandbox account cannot be deleted", code="sandbox_account")
        await _refuse_if_in_use(uow, account, in_use)
        org = await uow.session.get(Org, actor.org_id)
        if org is not None and org.default_carrier_account_id == account.id:
            sandbox = await uow.session.scalar(
                select(CarrierAccount.id)
                .where(CarrierAccount.org_id == org.id, CarrierAccount.carrier == "sandbox")
                .limit(1)
            )
            org.default_carrier_account_id = sandbox
        audit(
            uow,
            action="carrier_account.deleted",
            target_type="carrier_account",
            target_id=account.id,
            before=_public(account),
        )
        await uow.session.delete(account)
        # Routing caches verification keys per account: a deleted account must stop verifying now.
        accounts_changed(uow, [account.id])
        await uow.commit()


async def _refuse_if_in_use(uow: UnitOfWork, account: CarrierAccount, in_use: AccountUsers) -> None:
    users = await in_use(uow.session, account.id)
    if users.get("numbers"):
        raise Conflict(
            f"{users['numbers']} number(s) still use this {display(account.carrier)} account; "
            "release or move them first",
            code="carrier_account_in_use",
            extra={"numbers": users["numbers"]},
        )
    if users.get("orders"):
        raise Conflict(
            f"{users['orders']} purchase(s) on this account are still pending; run reconcile first",
            code="carrier_account_in_use",
            extra={"orders": users["orders"]},
        )


def _set_default(uow: UnitOfWork, org: Org, account: CarrierAccount) -> None:
    before = org.default_carrier_account_id
    org.default_carrier_account_id = account.id
    audit(
        uow,
        action="org.default_carrier_account_set",
        target_type="org",
        target_id=org.id,
        before={"default_carrier_account_id": before},
        after={"default_carrier_account_id": account.id},
        org_id=org.id,
    )


async def set_default(*, db: Database, actor: Actor, account_id: str) -> CarrierAccountRead:
    """Make ``account_id`` (the org's own or a platform account) the org's default for buying."""
    assert actor.org_id is not None
    async with db.uow(actor) as uow:
        account = await visible_account(uow.session, org_id=actor.org_id, account_id=account_id)
        if account.carrier in ROUTING_ONLY:
            raise Conflict(
                f"a {display(account.carrier)} account is routing-only (numbers are imported onto it, "
                "never bought), so it cannot be the default",
                code="routing_only_account",
            )
        org = await uow.session.get(Org, actor.org_id)
        if org is None:
            raise NotFound(f"org {actor.org_id} not found", code="org_not_found")
        if org.default_carrier_account_id != account.id:
            _set_default(uow, org, account)
        await uow.commit()
    return to_read(account, default_id=account.id)
