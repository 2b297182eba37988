"""Calls: the call log with its filters, a call's page with its decision trace, and "Test call".

Reads go through ``calls.reading`` and the test call through ``calls.testcalls.place``: the same
functions ``/v1/calls`` and ``POST /v1/test-calls`` call. A filter that may match rarely
(status, outcome, carrier, dates) scans one window of the next-newest calls per page and says so,
as the numbers list does, so a page's cost does not grow with the org's history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from numberplane.calls import reading, testcalls
from numberplane.calls.schemas import (
    CARRIERS,
    OUTCOMES,
    STATUSES,
    CallFilters,
    DayCount,
    PlaceTestCall,
)
from numberplane.console.web import (
    PREFIX,
    change_form,
    db_of,
    render,
    require_user,
    see_other,
    settings_of,
    text,
)
from numberplane.kernel import e164
from numberplane.kernel.errors import ValidationFailed
from numberplane.kernel.pagination import encode_cursor
from numberplane.numbers import service as numbers_service
from numberplane.numbers.schemas import PhoneNumberRead
from numberplane.tenancy.users import SessionUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 50
SCAN_WINDOW = 10_000  # calls a rarely-matching filtered page looks through at most (bench/console.py)
RECENT = 10  # calls on a number's page
CHART_DAYS = 30
FILTERS = ("number", "number_id", "status", "outcome", "carrier", "since", "until")


def _date(value: str | None, field: str) -> dt.date | None:
    value = (value or "").strip()[:10]
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed.field(field, "must be a date, YYYY-MM-DD") from None


def _one_of(value: str | None, allowed: tuple[str, ...], field: str) -> str | None:
    value = (value or "").strip()[:40]
    if value and value not in allowed:
        raise ValidationFailed.field(field, f"must be one of {', '.join(allowed)}")
    return value or None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@router.get("/calls")
async def calls_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    params = request.query_params
    since = _date(params.get("since"), "since")
    until = _date(params.get("until"), "until")  # that whole day included
    db = db_of(request)
    number_id = (params.get("number_id") or "").strip()[:36]
    typed = (params.get("number") or "").strip()[:64]
    if typed:  # the form's own field name in the error, not the API's
        try:
            typed = e164.to_e164(typed)
        except e164.InvalidPhoneNumber as exc:
            raise ValidationFailed.field("number", exc.reason) from None
    held = None
    if number_id:  # one of the org's numbers (another org's answers as a missing one: 404)
        number = await numbers_service.get_number(db=db, org_id=user.org_id, ref=number_id)
        number_id, held = number.id, number.phone_number
    filters = CallFilters(
        # With the number id, its E.164 too: the index (org, number, id) then finds its calls.
        phone_number=typed or held,
        phone_number_id=number_id or None,
        status=_one_of(params.get("status"), STATUSES, "status"),
        outcome=_one_of(params.get("outcome"), OUTCOMES, "outcome"),
        carrier=_one_of(params.get("carrier"), CARRIERS, "carrier"),
        since=_midnight(since) if since else None,
        until=_midnight(until + dt.timedelta(days=1)) if until else None,
    )
    cursor = (params.get("cursor") or "").strip()[:200] or None
    kept = {k: params[k].strip() for k in FILTERS if (params.get(k) or "").strip()}
    scanning = bool(filters.status or filters.outcome or filters.carrier or since or until)
    floor = None
    if scanning:
        floor = await reading.scan_floor(
            db=db, org_id=user.org_id, filters=filters, cursor=cursor, rows=SCAN_WINDOW
        )
    page = await reading.list_calls(
        db=db, org_id=user.org_id, filters=filters, limit=PAGE_SIZE, cursor=cursor, floor=floor
    )
    next_url = (
        f"{PREFIX}/calls?{urlencode({**kept, 'cursor': page.next_cursor})}" if page.next_cursor else None
    )
    older_url = None
    if page.next_cursor is None and floor is not None:  # this window is done; older calls remain
        older_url = f"{PREFIX}/calls?{urlencode({**kept, 'cursor': encode_cursor(floor)})}"
    return render(
        request,
        "calls.html",
        calls=page.data,
        f={k: params.get(k, "").strip() for k in FILTERS},
        filtered=bool(kept),
        scoped=held,
        statuses=STATUSES,
        outcomes=OUTCOMES,
        carriers=CARRIERS,
        cursor=cursor,
        next_url=next_url,
        older_url=older_url,
        window=SCAN_WINDOW,
        first_url=f"{PREFIX}/calls?{urlencode(kept)}" if kept else f"{PREFIX}/calls",
    )


@router.get("/calls/{call_id}")
async def call_page(call_id: str, request: Request, user: SessionUser = Depends(require_user)) -> Response:
    call = await reading.get_call(db=db_of(request), org_id=user.org_id, call_id=call_id)
    return render(request, "call.html", c=call)


@router.post("/numbers/{number_id}/test-call")
async def test_call(number_id: str, request: Request) -> Response:
    """Ring the number through its carrier's webhooks (``POST /v1/test-calls``), then show the call."""
    user, form = await change_form(request)
    db = db_of(request)
    number = await numbers_service.get_number(db=db, org_id=user.org_id, ref=number_id)
    body: dict[str, object] = {"to": number.id}
    caller = text(form, "from", 64)
    if caller:
        body["from"] = caller
    try:
        wanted = PlaceTestCall.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed.field(str(first["loc"][0]), first["msg"]) from None
    settings = settings_of(request)
    placed = await testcalls.place(
        db=db,
        org_id=user.org_id,
        request=wanted,
        public_url=settings.public_url,
        timeout=settings.test_call_timeout_seconds,
        recorder=getattr(request.app.state, "call_recorder", None),
    )
    return see_other(f"{PREFIX}/calls/{placed.id}", "test_call")


# -- On a number's page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: dt.date
    calls: int


@dataclass(frozen=True)
class Chart:
    """A calls-per-day bar chart, laid out here and drawn as plain SVG by number.html."""

    width: int
    height: int
    bars: list[Bar]
    total: int
    busiest: DayCount | None
    label: str


def chart(days: list[DayCount], *, width: int = 600, height: int = 120) -> Chart:
    top = max((d.calls for d in days), default=0)
    slot = width / max(1, len(days))
    bars = []
    for i, d in enumerate(days):
        h = round((d.calls / top) * (height - 4), 1) if top else 0.0
        h = max(h, 1.0) if d.calls else 0.0
        bars.append(
            Bar(
                x=round(i * slot + 1, 1),
                y=round(height - h, 1),
                width=round(slot - 2, 1),
                height=h,
                day=d.day,
                calls=d.calls,
            )
        )
    total = sum(d.calls for d in days)
    busiest = max(days, key=lambda d: (d.calls, d.day)) if total else None
    span = f"{days[0].day:%b %-d} to {days[-1].day:%b %-d}" if days else ""
    label = f"Calls per day, last {len(days)} days ({span}, UTC): {total:,} in all"
    label += f", most on {busiest.day:%b %-d} ({busiest.calls:,})." if busiest else "."
    return Chart(width=width, height=height, bars=bars, total=total, busiest=busiest, label=label)


async def number_calls(request: Request, user: SessionUser, number: PhoneNumberRead) -> dict[str, Any]:
    """What a number's page shows of its calls: the most recent, and the last 30 days as a chart."""
    db = db_of(request)
    recent = await reading.list_calls(
        db=db,
        org_id=user.org_id,
        # The E.164 as well as the id: the index (org, number, id) finds them, newest first.
        filters=CallFilters(phone_number=number.phone_number, phone_number_id=number.id),
        limit=RECENT,
    )
    days = await reading.calls_per_day(db=db, org_id=user.org_id, ref=number.id, days=CHART_DAYS)
    return {
        "recent_calls": recent.data,
        "more_calls": recent.has_more,
        "chart": chart(days),
        "can_test_call": number.status == "active",
    }
