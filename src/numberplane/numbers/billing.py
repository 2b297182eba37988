"""The billing clock: a purchased number is billed monthly from the day it became active.

``renew_due`` rolls ``next_billed_at`` forward by calendar months for active purchased numbers
whose date has passed, one ``phone_number.renewed`` event per month elapsed and one audit row
per number, in one unit of work. It is safe to run from several workers at once: PostgreSQL
skips rows another worker holds, and each row's move is conditional on the date it read.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging

from sqlalchemy import select, update

from numberplane.kernel.db import Actor, Database, as_utc, utcnow
from numberplane.kernel.outbox import audit, emit
from numberplane.numbers.models import PhoneNumber

log = logging.getLogger("numberplane.billing")

# A number that was not renewed for a long time catches up at most this many months per run.
MAX_PERIODS_PER_STEP = 12
BATCH = 100


def add_month(value: dt.datetime, anchor_day: int) -> dt.datetime:
    """One calendar month later, on ``anchor_day`` or the month's last day if shorter."""
    year, month = (value.year + 1, 1) if value.month == 12 else (value.year, value.month + 1)
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def next_billing(after: dt.datetime) -> dt.datetime:
    """The first billing date of a number that became active at ``after``."""
    return add_month(after, after.day)


def anchor_day(next_billed_at: dt.datetime, created_at: dt.datetime | None) -> int:
    """The billing day of month. A day clamped by a short month (Jan 31 -> Feb 28) comes back
    (-> Mar 31) when the number was bought on a later day of the month."""
    last = calendar.monthrange(next_billed_at.year, next_billed_at.month)[1]
    if created_at is not None and next_billed_at.day == last and created_at.day > last:
        return created_at.day
    return next_billed_at.day


async def renew_due(
    *, db: Database, now: dt.datetime | None = None, limit: int = BATCH, org_id: str | None = None
) -> int:
    """Renew up to ``limit`` numbers whose billing date has passed. Returns the periods renewed."""
    now = now or utcnow()
    renewed = 0
    async with db.uow(Actor.system()) as uow:
        query = (
            select(PhoneNumber)
            .where(
                PhoneNumber.status == "active",
                PhoneNumber.origin == "purchased",
                PhoneNumber.next_billed_at.is_not(None),
                PhoneNumber.next_billed_at <= now,
            )
            .order_by(PhoneNumber.next_billed_at, PhoneNumber.id)
            .limit(limit)
        )
        if org_id is not None:
            query = query.where(PhoneNumber.org_id == org_id)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        numbers = list(await uow.session.scalars(query))
        for number in numbers:
            previous = as_utc(number.next_billed_at)
            assert previous is not None
            anchor = anchor_day(previous, as_utc(number.created_at))
            periods: list[tuple[dt.datetime, dt.datetime]] = []
            current = previous
            while current <= now and len(periods) < MAX_PERIODS_PER_STEP:
                following = add_month(current, anchor)
                periods.append((current, following))
                current = following
            # Conditional: a second worker (SQLite has no SKIP LOCKED) renews nothing twice.
            moved = await uow.session.execute(
                update(PhoneNumber)
                .where(
                    PhoneNumber.id == number.id,
                    PhoneNumber.status == "active",
                    PhoneNumber.next_billed_at == number.next_billed_at,
                )
                .values(next_billed_at=current)
                .execution_options(synchronize_session=False)
            )
            if getattr(moved, "rowcount", 1) != 1:
                continue
            for start, end in periods:
                emit(
                    uow,
                    type="phone_number.renewed",
                    org_id=number.org_id,
                    subject_type="phone_number",
                    subject_id=number.id,
                    data={
                        "id": number.id,
                        "phone_number": number.phone_number,
                        "period_start": start.isoformat(),
                        "period_end": end.isoformat(),
                        "next_billed_at": end.isoformat(),
                    },
                )
            audit(
                uow,
                action="phone_number.renewed",
                target_type="phone_number",
                target_id=number.id,
                org_id=number.org_id,
                before={"next_billed_at": previous.isoformat()},
                after={"next_billed_at": current.isoformat()},
            )
            renewed += len(periods)
        await uow.commit()
    if renewed:
        log.info("billing: renewed %d number-months", renewed)
    return renewed
