"""Carrier accounts chosen by a vendor's provider name, for the dialects.

Vendor APIs name a carrier rather than an account: Retell's ``number_provider``, Vocode's
``telephony_provider``, Zudu's ``number_provider``, Vapi's ``provider``. This module turns such a
name into one of the org's carrier accounts, so a dialect never reads ``carriers`` itself, and
connects the Twilio account a Vapi client hands over with its credentials (verified at Twilio,
stored encrypted, never returned).

Which account a provider name picks:
1. The org's accounts and the platform-wide ones of that carrier; the org's default when it is
   one of them, else the org's own oldest, else the oldest platform-wide one.
2. None of that carrier, and the org's only account is its sandbox: the sandbox (it stands in
   for every carrier until a real account is connected).
3. Otherwise a validation error naming the vendor's field.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.carriers import service as carriers
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import credentials_of
from numberplane.carriers.schemas import ROUTING_ONLY, CarrierAccountCreate
from numberplane.kernel.changes import accounts_changed
from numberplane.kernel.crypto import SecretKeyError, encrypt
from numberplane.kernel.db import Actor, Database, utcnow
from numberplane.kernel.errors import AppError, ValidationFailed
from numberplane.kernel.outbox import audit
from numberplane.numbers.importing import import_one
from numberplane.numbers.reading import account_users
from numberplane.numbers.schemas import PhoneNumberImportRow, PhoneNumberRead
from numberplane.tenancy.models import Org

log = logging.getLogger("numberplane.numbers.providers")
SANDBOX = "sandbox"
MAX_ACCOUNTS = 500
# Vendor spellings of carrier names.
ALIASES = {"signal_wire": "signalwire", "signal-wire": "signalwire", "nexmo": "vonage"}


@dataclass(frozen=True)
class ChosenAccount:
    id: str
    carrier: str
    is_sandbox: bool
    created: bool = False  # connected by this request (``forget`` undoes it if the request fails)


def carrier_name(provider: str) -> str:
    name = provider.strip().lower()
    return ALIASES.get(name, name)


async def _visible(session: AsyncSession, org_id: str) -> list[CarrierAccount]:
    rows = await session.scalars(
        select(CarrierAccount)
        .where(
            or_(CarrierAccount.org_id == org_id, CarrierAccount.org_id.is_(None)),
            CarrierAccount.status != "deleted",
        )
        .order_by(CarrierAccount.id)
        .limit(MAX_ACCOUNTS)
    )
    return list(rows)


def _pick(accounts: list[CarrierAccount], org_id: str, default_id: str | None) -> CarrierAccount:
    for account in accounts:
        if account.id == default_id:
            return account
    own = [a for a in accounts if a.org_id == org_id]
    return (own or accounts)[0]


async def account_for_provider(
    *,
    db: Database,
    org_id: str,
    provider: str,
    field: str,
    account_id: str | None = None,
    buying: bool = True,
) -> ChosenAccount:
    """The org's carrier account for a vendor's provider name (see the module docstring).

    ``account_id``, when the vendor also names an account, must be of that carrier. ``buying``
    refuses routing-only carriers (Vonage), where numbers can only be imported.
    """
    carrier = carrier_name(provider)
    async with db.session() as session:
        accounts = await _visible(session, org_id)
        org = await session.get(Org, org_id)
    default_id = org.default_carrier_account_id if org is not None else None
    sole_sandbox = len(accounts) == 1 and accounts[0].carrier == SANDBOX and accounts[0].org_id == org_id
    if account_id:
        named = next((a for a in accounts if a.id == account_id), None)
        if named is None:
            raise ValidationFailed.field(field, f"carrier account {account_id} not found", "unknown_account")
        if named.carrier != carrier and not (sole_sandbox and named.carrier == SANDBOX):
            raise ValidationFailed.field(
                field,
                f"names {provider!r} but carrier account {account_id} is a {named.carrier} account",
                "provider_mismatch",
            )
        chosen = named
    else:
        matching = [a for a in accounts if a.carrier == carrier]
        if matching:
            chosen = _pick(matching, org_id, default_id)
        elif sole_sandbox:
            chosen = accounts[0]
        else:
            have = sorted({a.carrier for a in accounts}) or ["none"]
            raise ValidationFailed.field(
                field,
                f"the org has no {carrier} carrier account (it has: {', '.join(have)}); "
                "connect one at /v1/carrier-accounts first",
                "no_carrier_account",
            )
    if buying and chosen.carrier in ROUTING_ONLY:
        raise ValidationFailed.field(
            field,
            f"{chosen.carrier} accounts are routing-only here: numbers are imported onto them, not bought",
            "routing_only_account",
        )
    return ChosenAccount(id=chosen.id, carrier=chosen.carrier, is_sandbox=chosen.carrier == SANDBOX)


async def account_named(
    *, db: Database, org_id: str, account_id: str, carriers_allowed: Iterable[str] | None, field: str
) -> ChosenAccount | None:
    """The org's (or a platform-wide) account with this id, of one of ``carriers_allowed``;
    None when no account has that id (the caller may read it as something else, a SIP trunk)."""
    if len(account_id) > 64:
        return None
    async with db.session() as session:
        account = await session.get(CarrierAccount, account_id)
    if account is None or account.org_id not in (None, org_id) or account.status == "deleted":
        return None
    allowed = tuple(carriers_allowed) if carriers_allowed is not None else None
    if allowed is not None and account.carrier not in allowed:
        raise ValidationFailed.field(
            field, f"carrier account {account_id} is a {account.carrier} account, not {' or '.join(allowed)}"
        )
    return ChosenAccount(id=account.id, carrier=account.carrier, is_sandbox=account.carrier == SANDBOX)


async def public_ids(*, db: Database, org_id: str, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each visible account's public settings (``account_sid`` and the like), never a secret."""
    ids = sorted({i for i in account_ids if i})[:MAX_ACCOUNTS]
    if not ids:
        return {}
    async with db.session() as session:
        rows = await session.scalars(select(CarrierAccount).where(CarrierAccount.id.in_(ids)))
        return {
            a.id: {"carrier": a.carrier, **dict(a.config or {})} for a in rows if a.org_id in (None, org_id)
        }


@dataclass(frozen=True)
class TwilioCredentials:
    """What a client hands over to import from its Twilio account. ``fields`` maps
    account_sid / auth_token / api_key / api_secret to the vendor's own field names."""

    account_sid: str
    auth_token: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    fields: Mapping[str, str] | None = None

    def name(self, key: str) -> str:
        return (self.fields or {}).get(key, key)

    def as_credentials(self) -> dict[str, str]:
        creds = {"account_sid": self.account_sid}
        if self.api_key or self.api_secret:
            creds["api_key_sid"] = self.api_key or ""
            creds["api_key_secret"] = self.api_secret or ""
        if self.auth_token:
            creds["auth_token"] = self.auth_token
        return creds


# Twilio's credential names in an account -> the names in TwilioCredentials.fields.
_CREDENTIAL_FIELDS = {
    "account_sid": "account_sid",
    "auth_token": "auth_token",
    "api_key_sid": "api_key",
    "api_key_secret": "api_secret",
}


def _account_create(creds: TwilioCredentials) -> CarrierAccountCreate:
    """The account request for these credentials; a problem names the vendor's field."""
    if bool(creds.api_key) != bool(creds.api_secret):
        missing, other = ("api_secret", "api_key") if creds.api_key else ("api_key", "api_secret")
        raise ValidationFailed.field(creds.name(missing), f"is required with {creds.name(other)}")
    if not creds.auth_token and not creds.api_key:
        raise ValidationFailed.field(
            creds.name("auth_token"),
            f"is required (or {creds.name('api_key')} and {creds.name('api_secret')})",
        )
    try:
        return CarrierAccountCreate(
            carrier="twilio", name=f"Twilio {creds.account_sid}"[:200], credentials=creds.as_credentials()
        )
    except ValidationError as exc:
        text = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        first = text.split(";")[0]
        key = first.split(":")[0].removeprefix("credentials.").strip()
        field = creds.name(_CREDENTIAL_FIELDS.get(key, "account_sid"))
        message = first.split(":", 1)[1].strip() if ":" in first else first
        raise ValidationFailed.field(field, message) from None


def _same_secrets(stored: Mapping[str, Any], given: Mapping[str, str]) -> bool:
    for key in ("auth_token", "api_key_secret"):
        if key in given and not hmac.compare_digest(str(stored.get(key) or ""), given[key]):
            return False
    return True


async def twilio_account(*, db: Database, actor: Actor, creds: TwilioCredentials) -> ChosenAccount:
    """The org's Twilio account for ``creds.account_sid``, connected now if it has none.

    A new account is verified at Twilio first and its secrets stored encrypted. An existing one
    is used as it is when the secrets given match the stored ones; different secrets are
    verified at Twilio and, once accepted, replace the stored ones (the caller rotated them).
    """
    assert actor.org_id is not None
    given = _account_create(creds)
    public, secrets = given.split()
    async with db.session() as session:
        accounts = await _visible(session, actor.org_id)
    existing = [
        a
        for a in accounts
        if a.carrier == "twilio"
        and a.org_id == actor.org_id
        and str((a.config or {}).get("account_sid", "")).lower() == creds.account_sid.strip().lower()
    ]
    if not existing:
        created = await carriers.create_account(db=db, actor=actor, org_id=actor.org_id, data=given)
        return ChosenAccount(id=created.id, carrier="twilio", is_sandbox=False, created=True)
    account = existing[0]
    try:
        stored = credentials_of(account)
    except (SecretKeyError, ValueError):
        stored = {}
    config = dict(account.config or {})
    same_key = config.get("api_key_sid") == public.get("api_key_sid") or "api_key_sid" not in public
    if same_key and _same_secrets(stored, secrets):
        return ChosenAccount(id=account.id, carrier="twilio", is_sandbox=False)
    if "api_key_sid" in public:
        config["api_key_sid"] = public["api_key_sid"]
    probe = CarrierAccount(
        id=account.id,
        org_id=account.org_id,
        carrier="twilio",
        name=account.name,
        config=config,
        credentials_enc=encrypt(json.dumps({**stored, **secrets})),
    )
    await carriers.verify(probe, db=db)
    async with db.uow(actor) as uow:
        row = await uow.session.get(CarrierAccount, account.id)
        if row is not None:
            row.credentials_enc = probe.credentials_enc
            row.config = config
            row.updated_at = utcnow()
            audit(
                uow,
                action="carrier_account.credentials_replaced",
                target_type="carrier_account",
                target_id=account.id,
                after={"carrier": "twilio", "secrets_set": sorted({**stored, **secrets})},
            )
            accounts_changed(uow, [account.id])
        await uow.commit()
    return ChosenAccount(id=account.id, carrier="twilio", is_sandbox=False)


async def import_from_twilio(
    *, db: Database, actor: Actor, creds: TwilioCredentials, row: PhoneNumberImportRow
) -> PhoneNumberRead:
    """Import a number the client holds at Twilio, on the org's Twilio account for that SID,
    connecting it first (verified at Twilio, stored encrypted) when the org has none. One
    operation: an account connected for an import that then fails is removed again."""
    chosen = await twilio_account(db=db, actor=actor, creds=creds)
    data: dict[str, Any] = {name: getattr(row, name) for name in row.model_fields_set}
    try:
        return await import_one(db=db, actor=actor, row={**data, "carrier_account_id": chosen.id})
    except Exception:
        await _forget(db=db, actor=actor, chosen=chosen)
        raise


async def _forget(*, db: Database, actor: Actor, chosen: ChosenAccount) -> None:
    """Undo an account connected for a request that then failed, so a refused request leaves
    nothing behind. An account some number already uses is kept."""
    if not chosen.created:
        return
    try:
        await carriers.delete_account(db=db, actor=actor, account_id=chosen.id, in_use=account_users)
    except AppError:
        log.warning("kept carrier account %s connected for a request that failed", chosen.id)
