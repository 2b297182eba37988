"""/v1/calls, a number's call stats, and test calls."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request

from numberplane.calls import reading, testcalls
from numberplane.calls.schemas import CallFilters, CallRead, NumberStats, PlacedTestCall, PlaceTestCall
from numberplane.kernel.deps import get_db
from numberplane.kernel.pagination import Page
from numberplane.tenancy.auth import Principal, require_principal

router = APIRouter(prefix="/v1", tags=["calls"])


@router.get("/calls", response_model=Page[CallRead], summary="List calls, newest first")
async def list_calls(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=200),
    phone_number: str | None = Query(None, max_length=64, description="The called number, any format"),
    phone_number_id: str | None = Query(None, max_length=36),
    agent_id: str | None = Query(None, max_length=36),
    status: str | None = Query(None, max_length=200, description="Comma-separated statuses"),
    outcome: str | None = Query(None, max_length=200, description="Comma-separated routing outcomes"),
    carrier: str | None = Query(None, max_length=100),
    since: dt.datetime | None = Query(None, description="Calls started at or after (ISO 8601)"),
    until: dt.datetime | None = Query(None, description="Calls started before (ISO 8601)"),
    principal: Principal = Depends(require_principal),
) -> Page[CallRead]:
    filters = CallFilters(
        phone_number=phone_number,
        phone_number_id=phone_number_id,
        agent_id=agent_id,
        status=status,
        outcome=outcome,
        carrier=carrier,
        since=since,
        until=until,
    )
    return await reading.list_calls(
        db=get_db(request), org_id=principal.org_id, filters=filters, limit=limit, cursor=cursor
    )


@router.get("/calls/{call_id}", response_model=CallRead, summary="Get a call, with its routing trace")
async def get_call(
    call_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> CallRead:
    return await reading.get_call(db=get_db(request), org_id=principal.org_id, call_id=call_id)


@router.get(
    "/phone-numbers/{ref}/stats",
    response_model=NumberStats,
    tags=["phone numbers"],
    summary="A number's calls over the last 24h, 7d or 30d",
)
async def number_stats(
    ref: str,
    request: Request,
    window: str = Query("24h", max_length=8, description="24h, 7d or 30d"),
    principal: Principal = Depends(require_principal),
) -> NumberStats:
    return await reading.number_stats(db=get_db(request), org_id=principal.org_id, ref=ref, window=window)


@router.post(
    "/test-calls",
    response_model=PlacedTestCall,
    status_code=201,
    summary="Make the number's carrier call Numberplane, as for a real call (nothing is dialled)",
)
async def create_test_call(
    body: PlaceTestCall, request: Request, principal: Principal = Depends(require_principal)
) -> PlacedTestCall:
    settings = request.app.state.settings
    return await testcalls.place(
        db=get_db(request),
        org_id=principal.org_id,
        request=body,
        public_url=settings.public_url,
        timeout=settings.test_call_timeout_seconds,
        recorder=getattr(request.app.state, "call_recorder", None),
    )
