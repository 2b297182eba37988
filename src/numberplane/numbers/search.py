"""Searching a carrier's inventory for numbers to buy."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from numberplane.carriers.base import CarrierError, NoNumbersAvailable, SearchQuery
from numberplane.carriers.registry import adapter_for
from numberplane.kernel import e164
from numberplane.kernel.db import Database
from numberplane.kernel.errors import ValidationFailed
from numberplane.numbers.accounts import account_for, buyable, carrier_error
from numberplane.numbers.models import HOLDING_STATUSES, PhoneNumber
from numberplane.numbers.schemas import AvailableNumberRead


async def search_available(
    *,
    db: Database,
    org_id: str,
    country: str = "US",
    number_type: str = "local",
    area_code: str | None = None,
    contains: str | None = None,
    limit: int = 20,
    carrier_account_id: str | None = None,
) -> list[AvailableNumberRead]:
    """The carrier's inventory, minus numbers someone already holds in Numberplane."""
    if not 1 <= limit <= 100:
        raise ValidationFailed.field("limit", "must be between 1 and 100")
    async with db.session() as session:
        account = buyable(await account_for(session, org_id, carrier_account_id))
    adapter = adapter_for(account, db=db)
    # Ask for more than wanted: numbers someone already holds here are dropped afterwards, and a
    # search must not come back short because of them.
    query = SearchQuery(
        country=country.upper(),
        number_type=number_type,
        area_code=area_code,
        contains=contains,
        limit=min(100, limit * 2 + 10),
    )
    try:
        found = await adapter.search(query)
    except NoNumbersAvailable:
        return []
    except CarrierError as exc:
        raise carrier_error(exc) from exc
    held = await held_numbers([n.phone_number for n in found], db)
    return [
        AvailableNumberRead(phone_number_pretty=e164.pretty(n.phone_number), **n.__dict__)
        for n in found
        if n.phone_number not in held
    ][:limit]


async def held_numbers(numbers: Sequence[str], db: Database) -> set[str]:
    out: set[str] = set()
    async with db.session() as session:
        for start in range(0, len(numbers), 500):
            rows = await session.scalars(
                select(PhoneNumber.phone_number).where(
                    PhoneNumber.phone_number.in_(numbers[start : start + 500]),
                    PhoneNumber.status.in_(HOLDING_STATUSES),
                )
            )
            out.update(rows)
    return out
