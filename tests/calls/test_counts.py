"""The console's counts: calls since a time for a page of numbers, and a number's calls per UTC day."""

from __future__ import annotations

import datetime as dt

import pytest

from numberplane.calls import reading
from numberplane.calls.schemas import CallFilters
from numberplane.calls.service import write_batch
from numberplane.kernel.db import Database, utcnow
from numberplane.kernel.errors import NotFound, ValidationFailed
from numberplane.kernel.pagination import encode_cursor
from tests.calls.test_calls_api import observed
from tests.routing.world import World
from tests.support import OrgCreds


async def test_calls_since_counts_only_the_asked_numbers_from_the_bound(
    db: Database, world: World, org: OrgCreds, other_org: OrgCreds
) -> None:
    a, b, quiet, unasked = [await world.number(None) for _ in range(4)]
    now = utcnow()
    since = now - dt.timedelta(hours=3)
    batch = []
    for i in range(3):
        batch += observed(org.org_id, a.id, a.phone_number, f"cs-a{i}", at=now - dt.timedelta(minutes=i))
    batch += observed(org.org_id, a.id, a.phone_number, "cs-a-old", at=since - dt.timedelta(seconds=1))
    batch += observed(org.org_id, b.id, b.phone_number, "cs-b", at=since, status="completed", duration=3)
    batch += observed(org.org_id, unasked.id, unasked.phone_number, "cs-u", at=now)
    await write_batch(db=db, observations=batch)

    ids = [a.id, b.id, quiet.id]
    # A bound in another zone means the same instant.
    east = since.astimezone(dt.timezone(dt.timedelta(hours=5)))
    for bound in (since, east):
        counts = await reading.calls_since(db=db, org_id=org.org_id, number_ids=ids, since=bound)
        assert counts == {a.id: 3, b.id: 1}
    # Another org asking about these ids learns nothing.
    assert await reading.calls_since(db=db, org_id=other_org.org_id, number_ids=ids, since=since) == {}
    assert await reading.calls_since(db=db, org_id=org.org_id, number_ids=[], since=since) == {}
    with pytest.raises(ValidationFailed):
        await reading.calls_since(
            db=db, org_id=org.org_id, number_ids=[f"id-{i}" for i in range(1001)], since=since
        )


async def test_calls_per_day_has_one_entry_per_utc_day_zeros_included(
    db: Database, world: World, org: OrgCreds, other_org: OrgCreds
) -> None:
    number = await world.number(None)
    other = await world.number(None)
    now = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
    midnight = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    batch = []
    at = {
        "today-1": midnight,  # the first instant of today
        "today-2": now - dt.timedelta(minutes=5),
        "yesterday": midnight - dt.timedelta(microseconds=1),  # the last instant of yesterday
        "day-29": midnight - dt.timedelta(days=29) + dt.timedelta(hours=23),  # the first day shown
        "day-30": midnight - dt.timedelta(days=30) + dt.timedelta(hours=12),  # one day too old
    }
    for call_id, when in at.items():
        batch += observed(org.org_id, number.id, number.phone_number, f"pd-{call_id}", at=when)
    batch += observed(org.org_id, other.id, other.phone_number, "pd-elsewhere", at=now)
    await write_batch(db=db, observations=batch)

    days = await reading.calls_per_day(db=db, org_id=org.org_id, ref=number.phone_number, now=now)
    assert len(days) == 30
    assert days[0].day == dt.date(2026, 10, 22) and days[-1].day == dt.date(2026, 11, 20)
    assert [d.day for d in days] == sorted(d.day for d in days)
    counted = {d.day: d.calls for d in days if d.calls}
    assert counted == {dt.date(2026, 11, 20): 2, dt.date(2026, 11, 19): 1, dt.date(2026, 10, 22): 1}
    week = await reading.calls_per_day(db=db, org_id=org.org_id, ref=number.id, days=7, now=now)
    assert [d.calls for d in week] == [0, 0, 0, 0, 0, 1, 2]
    with pytest.raises(NotFound):
        await reading.calls_per_day(db=db, org_id=other_org.org_id, ref=number.id, now=now)
    with pytest.raises(ValidationFailed):
        await reading.calls_per_day(db=db, org_id=org.org_id, ref=number.id, days=0)


async def test_a_scan_window_bounds_a_filtered_page_from_below(
    db: Database, world: World, org: OrgCreds
) -> None:
    number = await world.number(None)
    other = await world.number(None)
    now = utcnow()
    batch = []
    for i in range(6):  # oldest first: w-0 … w-5; only w-1 and w-4 busy
        status = "busy" if i in (1, 4) else "completed"
        batch += observed(
            org.org_id, number.id, number.phone_number, f"w-{i}", at=now - dt.timedelta(minutes=10 - i),
            status=status, duration=1,
        )  # fmt: skip
    batch += observed(org.org_id, other.id, other.phone_number, "w-other", at=now, status="busy")
    await write_batch(db=db, observations=batch)
    filters = CallFilters(phone_number_id=number.id, status="busy")
    # Three calls of this number per window (the other number's calls do not count toward it).
    floor = await reading.scan_floor(db=db, org_id=org.org_id, filters=filters, rows=3)
    assert floor is not None
    first = await reading.list_calls(db=db, org_id=org.org_id, filters=filters, floor=floor)
    assert [c.carrier_call_id for c in first.data] == ["w-4"] and first.next_cursor is None
    below = encode_cursor(floor)
    assert await reading.scan_floor(db=db, org_id=org.org_id, filters=filters, cursor=below, rows=3)
    assert await reading.scan_floor(db=db, org_id=org.org_id, filters=filters, cursor=below, rows=4) is None
    rest = await reading.list_calls(db=db, org_id=org.org_id, filters=filters, cursor=below)
    assert [c.carrier_call_id for c in rest.data] == ["w-1"]
