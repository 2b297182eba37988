"""The billing clock: monthly from the day a purchased number became active; released and
imported numbers are never billed."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import select

from numberplane.kernel.db import Database, as_utc
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import OutboxEvent
from numberplane.numbers.billing import add_month, renew_due
from numberplane.numbers.models import PhoneNumber
from tests.support import OrgCreds


def test_add_month_keeps_the_billing_day() -> None:
    utc = dt.UTC
    assert add_month(dt.datetime(2025, 1, 31, 9, tzinfo=utc), 31) == dt.datetime(2025, 2, 28, 9, tzinfo=utc)
    assert add_month(dt.datetime(2025, 2, 28, 9, tzinfo=utc), 31) == dt.datetime(2025, 3, 31, 9, tzinfo=utc)
    assert add_month(dt.datetime(2024, 1, 30, tzinfo=utc), 30) == dt.datetime(2024, 2, 29, tzinfo=utc)
    assert add_month(dt.datetime(2025, 12, 15, tzinfo=utc), 15) == dt.datetime(2026, 1, 15, tzinfo=utc)


async def _renewals(db: Database, number_id: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.subject_id == number_id, OutboxEvent.type == "phone_number.renewed")
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_billing_clock_rolls_forward_monthly_and_stops_at_release(
    db: Database, client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    bought = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    assert bought.status_code == 201, bought.text
    number = bought.json()
    first_bill = dt.datetime.fromisoformat(number["next_billed_at"])
    assert first_bill > dt.datetime.now(dt.UTC)

    now = [first_bill - dt.timedelta(seconds=1)]
    assert await renew_due(db=db, now=now[0], org_id=org.org_id) == 0  # not due yet
    now[0] = first_bill + dt.timedelta(days=40)  # two billing dates have passed
    assert await renew_due(db=db, now=now[0], org_id=org.org_id) == 2
    assert await renew_due(db=db, now=now[0], org_id=org.org_id) == 0  # nothing twice

    events = await _renewals(db, number["id"])
    assert len(events) == 2
    periods = [(e.data["period_start"], e.data["period_end"]) for e in events]
    assert dt.datetime.fromisoformat(periods[0][0]) == first_bill
    assert periods[0][1] == periods[1][0]
    third = add_month(add_month(first_bill, first_bill.day), first_bill.day)
    assert dt.datetime.fromisoformat(periods[1][1]) == third
    assert all(e.org_id == org.org_id and e.data["phone_number"] == number["phone_number"] for e in events)
    got = (await client.get(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)).json()
    assert dt.datetime.fromisoformat(got["next_billed_at"]) == third
    trail = (
        await client.get(
            "/v1/audit-events",
            params={"target_id": number["id"], "action": "phone_number.renewed"},
            headers=org.bearer,
        )
    ).json()["data"]
    assert [(a["actor_type"], a["via"]) for a in trail] == [("system", "system")]

    released = await client.delete(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)
    assert released.json()["status"] == "released"
    later = third + dt.timedelta(days=400)
    assert await renew_due(db=db, now=later, org_id=org.org_id) == 0  # a released number stops
    assert len(await _renewals(db, number["id"])) == 2


async def test_billing_skips_imported_and_inactive_numbers(db: Database, org: OrgCreds) -> None:
    past = dt.datetime(2020, 1, 15, tzinfo=dt.UTC)
    rows = [
        PhoneNumber(
            id=new_id(), org_id=org.org_id, phone_number=f"+1415555{n:04d}", status=status, origin=origin
        )
        for n, (status, origin) in enumerate(
            [("active", "imported"), ("failed", "purchased"), ("releasing", "purchased")]
        )
    ]
    async with db.session() as session:
        for row in rows:
            row.next_billed_at = past
            session.add(row)
        await session.commit()
    assert await renew_due(db=db, now=dt.datetime(2021, 1, 1, tzinfo=dt.UTC), org_id=org.org_id) == 0
    async with db.session() as session:
        for row in rows:
            fresh = await session.get(PhoneNumber, row.id)
            assert fresh is not None and as_utc(fresh.next_billed_at) == past
