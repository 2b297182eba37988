"""Which carrier account a step uses, and how a carrier's refusal reads in the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.carriers.base import (
    CarrierAuthError,
    CarrierError,
    CarrierUnavailable,
    NoNumbersAvailable,
    NumberUnavailable,
)
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.schemas import ROUTING_ONLY
from numberplane.kernel.errors import AppError, Conflict, UpstreamError, ValidationFailed
from numberplane.tenancy.models import Org


async def account_for(
    session: AsyncSession, org_id: str, account_id: str | None, field: str = "carrier_account_id"
) -> CarrierAccount:
    """The carrier account to use: the one named (the org's own or a platform-wide one), else the
    org's default, else the org's sandbox."""
    if account_id:
        account = await session.get(CarrierAccount, account_id) if len(account_id) <= 64 else None
        if account is None or (account.org_id not in (None, org_id)):
            raise ValidationFailed.field(field, f"carrier account {account_id} not found", "not_found")
        return account
    org = await session.get(Org, org_id)
    if org is not None and org.default_carrier_account_id:
        account = await session.get(CarrierAccount, org.default_carrier_account_id)
        if account is not None:
            return account
    account = await session.scalar(
        select(CarrierAccount)
        .where(CarrierAccount.org_id == org_id, CarrierAccount.carrier == "sandbox")
        .limit(1)
    )
    if account is None:
        raise ValidationFailed.field(field, "the org has no carrier account; add one first", "not_found")
    return account


def buyable(account: CarrierAccount, field: str = "carrier_account_id") -> CarrierAccount:
    """Routing-only accounts (Vonage) have no adapter: numbers can be imported onto them, not bought."""
    if account.carrier in ROUTING_ONLY:
        raise ValidationFailed.field(
            field,
            f"{account.carrier} accounts are routing-only here: import numbers onto them instead",
            "routing_only_account",
        )
    return account


def carrier_error(exc: CarrierError) -> AppError:
    """A carrier's refusal as an API error that says which carrier and what to do."""
    headers = {}
    if isinstance(exc, CarrierUnavailable) and exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, NoNumbersAvailable | NumberUnavailable):
        return Conflict(exc.message, code=exc.code, extra={"carrier": exc.carrier})
    if isinstance(exc, CarrierAuthError):
        return UpstreamError(exc.message, code=exc.code, status=424, extra={"carrier": exc.carrier})
    return UpstreamError(
        exc.message,
        code=exc.code,
        status=exc.http_status,
        headers=headers,
        extra={"carrier": exc.carrier, "retriable": exc.retriable},
    )
