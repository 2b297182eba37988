"""Reading call records: one call, a filtered page (newest first), a number's stats."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import Date, Select, String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.calls.models import Call
from numberplane.calls.schemas import (
    CARRIERS,
    OUTCOMES,
    STATUSES,
    CallFilters,
    CallRead,
    DayCount,
    NumberStats,
    TraceStep,
    webhook_view,
)
from numberplane.kernel import e164
from numberplane.kernel.db import Database, as_utc, utcnow
from numberplane.kernel.errors import NotFound, ValidationFailed
from numberplane.kernel.ids import is_uuid
from numberplane.kernel.pagination import Page, decode_cursor, keyset, page
from numberplane.numbers.models import PhoneNumber
from numberplane.numbers.reading import resolve

WINDOWS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
SHORT_CALL_S = 10
FALLBACK_OUTCOMES = ("fallback_number", "fallback_sip")
MAX_IDS = 1000  # numbers one ``calls_since`` asks about (a page of a list)
MAX_DAYS = 366


def to_read(row: Call) -> CallRead:
    started = as_utc(row.started_at)
    assert started is not None
    return CallRead(
        id=row.id,
        phone_number_id=row.phone_number_id,
        phone_number=row.phone_number,
        from_=row.from_number,
        direction=row.direction,
        carrier=row.carrier,
        carrier_call_id=row.carrier_call_id,
        status=row.status,
        outcome=row.outcome,
        reason=row.reason,
        agent_id=row.agent_id,
        agent_version=row.agent_version,
        webhook=webhook_view(row.webhook),
        decision_ms=row.decision_ms,
        started_at=started,
        answered_at=as_utc(row.answered_at),
        ended_at=as_utc(row.ended_at),
        duration_s=row.duration_s,
        sip_code=row.sip_code,
        trace=[TraceStep.model_validate(s) for s in row.trace or []],
    )


def _not_found(call_id: str) -> NotFound:
    return NotFound(f"call {call_id[:64]} not found", code="call_not_found")


async def get_call(*, db: Database, org_id: str, call_id: str) -> CallRead:
    """The org's call; another org's answers exactly like a missing one."""
    if not is_uuid(call_id):
        raise _not_found(call_id)
    async with db.session() as session:
        row = await session.get(Call, call_id)
    if row is None or row.org_id != org_id:
        raise _not_found(call_id)
    return to_read(row)


async def find_call(*, db: Database, org_id: str, carrier: str, carrier_call_id: str) -> CallRead | None:
    """The org's call by the id its carrier gave it."""
    async with db.session() as session:
        row = await session.scalar(
            select(Call).where(
                Call.org_id == org_id, Call.carrier == carrier, Call.carrier_call_id == carrier_call_id
            )
        )
    return to_read(row) if row is not None else None


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ValidationFailed.field(field, f"must be among {', '.join(allowed)} (got {bad[0][:32]})")
    return items


def _filtered(query: Select[Any], org_id: str, f: CallFilters) -> Select[Any]:
    query = query.where(Call.org_id == org_id)
    if f.phone_number:
        try:
            number = e164.to_e164(f.phone_number.strip())
        except e164.InvalidPhoneNumber as exc:
            raise ValidationFailed.field("phone_number", exc.reason) from None
        query = query.where(Call.phone_number == number)
    if f.phone_number_id:
        query = query.where(Call.phone_number_id == f.phone_number_id)
    if f.agent_id:
        query = query.where(Call.agent_id == f.agent_id)
    if f.status:
        query = query.where(Call.status.in_(_choice("status", f.status, STATUSES)))
    if f.outcome:
        query = query.where(Call.outcome.in_(_choice("outcome", f.outcome, OUTCOMES)))
    if f.carrier:
        query = query.where(Call.carrier.in_(_choice("carrier", f.carrier, CARRIERS)))
    if f.since:
        query = query.where(Call.started_at >= _aware(f.since))
    if f.until:
        query = query.where(Call.started_at < _aware(f.until))
    return query


def _aware(value: dt.datetime) -> dt.datetime:
    """UTC: SQLite compares timestamps as text, so every bound must be in the zone they are stored in."""
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def list_calls(
    *,
    db: Database,
    org_id: str,
    filters: CallFilters | None = None,
    limit: int = 50,
    cursor: str | None = None,
    floor: str | None = None,
) -> Page[CallRead]:
    """The org's calls, newest first, a keyset page at a time. ``floor`` (a call id, inclusive)
    bounds the scan from below: see ``scan_floor``."""
    query = _filtered(select(Call), org_id, filters or CallFilters())
    if floor:
        query = query.where(Call.id >= floor)
    query = keyset(query, Call.id, limit=limit, cursor=cursor)
    async with db.session() as session:
        rows = list(await session.scalars(query))
    return page(rows, limit=limit, read=to_read)


def stats_scope(*, org_id: str, number_id: str, since: dt.datetime, until: dt.datetime) -> tuple[Any, ...]:
    """One number's calls in a window: the range ix_calls_phone_number_id_started_at reads."""
    return (
        Call.org_id == org_id,
        Call.phone_number_id == number_id,
        Call.started_at >= since,
        Call.started_at <= until,
    )


def stats_select(*, dialect: str, scope: tuple[Any, ...]) -> Select[Any]:
    """Every figure of a number's stats in one pass over its calls (bench/calls.py EXPLAINs it).

    The covering index ix_calls_phone_number_id_started_at holds every column read here, so
    PostgreSQL answers with an index-only scan; FILTER clauses keep each row to a few cheap tests.
    On PostgreSQL ``percentile_disc`` (the nearest rank, the value SQLite's two ordered reads
    find) adds the percentiles to the same pass, both sharing one sort of ``decision_ms``.
    """
    answered = Call.answered_at.is_not(None)
    columns: list[Any] = [
        func.count(),
        func.count().filter(answered),
        func.avg(Call.duration_s).filter(answered),
        func.count().filter(answered, Call.duration_s < SHORT_CALL_S),
        func.count().filter(Call.outcome.in_(FALLBACK_OUTCOMES)),
        func.count().filter(Call.outcome == "rejected"),
    ]
    if dialect == "postgresql":
        columns += [
            func.percentile_disc(0.5).within_group(Call.decision_ms),
            func.percentile_disc(0.99).within_group(Call.decision_ms),
        ]
    else:
        columns.append(func.count(Call.decision_ms))
    return select(*columns).where(*scope)


async def scan_floor(
    *,
    db: Database,
    org_id: str,
    filters: CallFilters | None = None,
    cursor: str | None = None,
    rows: int = 10_000,
) -> str | None:
    """The id ``rows`` calls below ``cursor`` (newest first, narrowed only by the number, which
    has an index), or None when fewer remain. A filter that may match rarely (status, outcome,
    carrier, dates) then scans one such window per page (``list_calls(floor=...)``), so a page's
    cost is bounded however rare the matches are; the next window starts below the floor."""
    f = filters or CallFilters()
    narrowed = CallFilters(phone_number=f.phone_number, phone_number_id=f.phone_number_id)
    query = _filtered(select(Call.id), org_id, narrowed)
    if cursor:
        after, _direction = decode_cursor(cursor)
        query = query.where(Call.id < after)
    query = query.order_by(Call.id.desc()).offset(max(0, rows - 1)).limit(1)
    async with db.session() as session:
        found = await session.scalar(query)
    return str(found) if found is not None else None


async def number_stats(*, db: Database, org_id: str, ref: str, window: str) -> NumberStats:
    """Calls to one of the org's numbers over the last ``window`` (24h, 7d, 30d)."""
    span = WINDOWS.get(window)
    if span is None:
        raise ValidationFailed.field("window", f"must be one of {', '.join(WINDOWS)}")
    until = utcnow()
    since = until - span
    async with db.session() as session:
        number = await resolve(session, org_id, ref)
        scope = stats_scope(org_id=org_id, number_id=number.id, since=since, until=until)
        totals = (await session.execute(stats_select(dialect=db.dialect, scope=scope))).one()
        calls, n_answered, avg_duration, short, fallbacks, rejected = totals[:6]
        if db.dialect == "postgresql":
            p50, p99 = (float(v) if v is not None else None for v in totals[6:])
        else:
            timed = totals[6]
            p50 = await _percentile(session, scope, timed, 0.50)
            p99 = await _percentile(session, scope, timed, 0.99)
    return NumberStats(
        phone_number_id=number.id,
        phone_number=number.phone_number,
        window=window,
        since=since,
        until=until,
        calls=calls,
        answered=n_answered,
        answer_rate=round(n_answered / calls, 4) if calls else None,
        avg_duration_s=round(float(avg_duration), 2) if avg_duration is not None else None,
        short_calls=short,
        fallbacks=fallbacks,
        rejected=rejected,
        decision_ms_p50=p50,
        decision_ms_p99=p99,
    )


async def _percentile(session: AsyncSession, scope: tuple[Any, ...], count: int, p: float) -> float | None:
    """The nearest-rank percentile of ``decision_ms``: the same value on SQLite and PostgreSQL."""
    if not count:
        return None
    rank = max(1, math.ceil(p * count))
    value = await session.scalar(
        select(Call.decision_ms)
        .where(*scope, Call.decision_ms.is_not(None))
        .order_by(Call.decision_ms)
        .offset(rank - 1)
        .limit(1)
    )
    return float(value) if value is not None else None


def start_of_day(now: dt.datetime | None = None) -> dt.datetime:
    """Midnight UTC of ``now``'s day: "today" for every count here is the UTC day."""
    now = (now or utcnow()).astimezone(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def calls_since(
    *, db: Database, org_id: str, number_ids: list[str], since: dt.datetime
) -> dict[str, int]:
    """Calls to each of ``number_ids`` (at most MAX_IDS: a page) started at or after ``since``.

    The ids are first narrowed to the org's own numbers (primary-key lookups); then one grouped
    query reads only the index ``(phone_number_id, started_at)`` over those ids from ``since``, so
    a page of numbers costs the same whatever the org holds. (A condition on ``calls.org_id`` there
    would tempt SQLite into walking the org's whole call history instead; a call's number belongs
    to the call's org, so the narrowing is the tenancy check.) Ids with no calls are absent."""
    ids = sorted(set(number_ids))
    if not ids:
        return {}
    if len(ids) > MAX_IDS:
        raise ValidationFailed.field("number_ids", f"at most {MAX_IDS} at a time")
    async with db.session() as session:
        owned = list(
            await session.scalars(
                select(PhoneNumber.id).where(PhoneNumber.id.in_(ids), PhoneNumber.org_id == org_id)
            )
        )
        if not owned:
            return {}
        query = (
            select(Call.phone_number_id, func.count())
            .where(Call.phone_number_id.in_(owned), Call.started_at >= _aware(since))
            .group_by(Call.phone_number_id)
        )
        rows = (await session.execute(query)).all()
    return {str(number_id): int(count) for number_id, count in rows}


def _day_of(db: Database) -> Any:
    """The UTC day of ``started_at``, YYYY-MM-DD as text (SQLite stores UTC text) or a date
    (PostgreSQL's timestamptz at UTC): ``str()`` of either is the ISO date."""
    if db.dialect == "postgresql":
        return cast(func.timezone("UTC", Call.started_at), Date)  # a third of to_char's cost
    return func.substr(cast(Call.started_at, String), 1, 10)


async def calls_per_day(
    *, db: Database, org_id: str, ref: str, days: int = 30, now: dt.datetime | None = None
) -> list[DayCount]:
    """Calls to one of the org's numbers on each of the last ``days`` UTC days (today last),
    zeros included, so a chart has one bar per day. A foreign number answers as a missing one.

    The number is resolved within the org; the count then reads only the index
    ``(phone_number_id, started_at)`` (no condition on ``calls.org_id``, which would send every
    row's lookup to the table: a busy number has tens of thousands of calls a month)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed.field("days", f"must be between 1 and {MAX_DAYS}")
    first = start_of_day(now) - dt.timedelta(days=days - 1)
    day = _day_of(db)
    async with db.session() as session:
        number = await resolve(session, org_id, ref)
        rows = (
            await session.execute(
                select(day, func.count())
                .where(Call.phone_number_id == number.id, Call.started_at >= _aware(first))
                .group_by(day)
            )
        ).all()
    counts = {str(d): int(c) for d, c in rows}
    dates = [(first + dt.timedelta(days=i)).date() for i in range(days)]
    return [DayCount(day=d, calls=counts.get(d.isoformat(), 0)) for d in dates]
