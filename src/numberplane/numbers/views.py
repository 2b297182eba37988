"""/v1/phone-numbers, /v1/available-phone-numbers, and reconciling a carrier account's numbers."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter

from numberplane.carriers import service as carriers
from numberplane.carriers.schemas import ReconcileReport
from numberplane.kernel.deps import actor_for, get_db
from numberplane.kernel.errors import Forbidden
from numberplane.kernel.gcpolicy import bulk_allocations
from numberplane.kernel.inputs import parse_in_thread
from numberplane.kernel.pagination import Page
from numberplane.numbers import reconcile, service
from numberplane.numbers.schemas import (
    AvailableNumberRead,
    ImportReport,
    ImportRowResult,
    NumberFilters,
    PhoneNumberBuy,
    PhoneNumberImport,
    PhoneNumberRead,
    PhoneNumberUpdate,
)
from numberplane.tenancy.auth import Principal, require_principal

router = APIRouter(prefix="/v1", tags=["phone numbers"])


class AvailableList(BaseModel):
    data: list[AvailableNumberRead]


@router.get(
    "/available-phone-numbers", response_model=AvailableList, summary="Search the carrier's inventory"
)
async def available(
    request: Request,
    country: str = Query("US", min_length=2, max_length=2),
    area_code: str | None = Query(None, pattern=r"^\d{2,5}$"),
    contains: str | None = Query(None, pattern=r"^\d{1,10}$"),
    type: Literal["local", "toll_free", "mobile"] = Query("local"),
    limit: int = Query(20, ge=1, le=100),
    carrier_account_id: str | None = None,
    principal: Principal = Depends(require_principal),
) -> AvailableList:
    found = await service.search_available(
        db=get_db(request),
        org_id=principal.org_id,
        country=country,
        number_type=type,
        area_code=area_code,
        contains=contains or None,
        limit=limit,
        carrier_account_id=carrier_account_id,
    )
    return AvailableList(data=found)


@router.post(
    "/phone-numbers",
    status_code=201,
    response_model=PhoneNumberRead,
    responses={202: {"description": "The carrier has not confirmed yet; the number is pending"}},
    summary="Buy a number (durable order; honours Idempotency-Key)",
)
async def buy(
    body: PhoneNumberBuy,
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(require_principal),
) -> JSONResponse:
    result = await service.buy(
        db=get_db(request), actor=actor_for(request, principal), data=body, idempotency_key=idempotency_key
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    status = 202 if result.pending else 201
    return JSONResponse(result.number.model_dump(mode="json"), status_code=status, headers=headers)


@router.post(
    "/phone-numbers/import",
    response_model=ImportReport,
    summary="Register numbers the org already owns (1 to 100,000; per-row results)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PhoneNumberImport.model_json_schema()}},
        }
    },
)
async def import_numbers(
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255),
    principal: Principal = Depends(require_principal),
) -> Response:
    # Up to 100,000 rows: parsed, validated and answered from worker threads, with full GC
    # passes deferred until the request's objects are gone (``kernel.gcpolicy``).
    with bulk_allocations():
        return await _import(request, idempotency_key, principal)


async def _import(request: Request, idempotency_key: str | None, principal: Principal) -> Response:
    body = await parse_in_thread(request, PhoneNumberImport)
    db, actor = get_db(request), actor_for(request, principal)
    replayed = False
    if idempotency_key is None:
        report = await service.import_numbers(db=db, actor=actor, rows=body.numbers, defaults=body.defaults)
    else:
        report, replayed = await service.import_numbers_once(
            db=db, actor=actor, rows=body.numbers, defaults=body.defaults, idempotency_key=idempotency_key
        )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    # 100,000 rows of report are serialised in a worker thread, off the event loop.
    content = await asyncio.to_thread(_report_json, report)
    return Response(content, media_type="application/json", headers=headers)


_RESULTS = TypeAdapter(list[ImportRowResult])
_REPORT_SLICE = 2000


def _report_json(report: ImportReport) -> bytes:
    """The report as JSON, a slice of results at a time: one serialiser call over 100,000 rows
    holds the interpreter lock for a third of a second, and the event loop with it."""
    head = report.model_dump_json(exclude={"results"})[:-1].encode()
    parts = [
        _RESULTS.dump_json(report.results[start : start + _REPORT_SLICE])[1:-1]
        for start in range(0, len(report.results), _REPORT_SLICE)
    ]
    return head + b',"results":[' + b",".join(p for p in parts if p) + b"]}"


@router.get("/phone-numbers", response_model=Page[PhoneNumberRead], summary="List numbers, newest first")
async def list_numbers(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    q: str | None = Query(None, max_length=100, description="Text in the name or digits in the number"),
    agent_id: str | None = None,
    status: str | None = Query(
        None,
        description="pending, active, releasing, released, failed, or all "
        "(comma-separated). Default: the live ones.",
    ),
    carrier: str | None = None,
    area_code: str | None = None,
    principal: Principal = Depends(require_principal),
) -> Page[PhoneNumberRead]:
    filters = NumberFilters(q=q, agent_id=agent_id, status=status, carrier=carrier, area_code=area_code)
    return await service.list_numbers(
        db=get_db(request), org_id=principal.org_id, filters=filters, limit=limit, cursor=cursor
    )


@router.get(
    "/phone-numbers/{ref}",
    response_model=PhoneNumberRead,
    summary="Get a number by id or E.164 (URL-encoded or not)",
)
async def get_number(
    ref: str, request: Request, principal: Principal = Depends(require_principal)
) -> PhoneNumberRead:
    return await service.get_number(db=get_db(request), org_id=principal.org_id, ref=ref)


@router.patch(
    "/phone-numbers/{ref}",
    response_model=PhoneNumberRead,
    summary="Partial update: absent fields are unchanged, null clears",
)
async def update_number(
    ref: str, body: PhoneNumberUpdate, request: Request, principal: Principal = Depends(require_principal)
) -> PhoneNumberRead:
    return await service.update_number(
        db=get_db(request), actor=actor_for(request, principal), ref=ref, patch=body
    )


@router.delete(
    "/phone-numbers/{ref}",
    response_model=PhoneNumberRead,
    responses={202: {"description": "The carrier has not confirmed; the number is releasing"}},
    summary="Release at the carrier; keeps a released record (idempotent)",
)
async def release_number(
    ref: str, request: Request, principal: Principal = Depends(require_principal)
) -> Response:
    read = await service.release_number(db=get_db(request), actor=actor_for(request, principal), ref=ref)
    return JSONResponse(read.model_dump(mode="json"), status_code=202 if read.status == "releasing" else 200)


@router.post(
    "/carrier-accounts/{account_id}/reconcile",
    tags=["carrier accounts"],
    response_model=ReconcileReport,
    summary="Settle pending purchases and releases, then find and repair drift at the carrier",
)
async def reconcile_account(
    account_id: str,
    request: Request,
    max_numbers: int = Query(reconcile.MAX_NUMBERS, ge=1, le=reconcile.MAX_NUMBERS),
    principal: Principal = Depends(require_principal),
) -> ReconcileReport:
    db = get_db(request)
    async with db.session() as session:
        account = await carriers.visible_account(session, org_id=principal.org_id, account_id=account_id)
    if account.org_id is None:
        # A platform account holds every org's numbers: only the operator reconciles it.
        raise Forbidden(
            "platform-wide accounts are reconciled by the operator (numberplane carriers reconcile)",
            code="platform_account",
        )
    return await reconcile.reconcile_account(
        db=db, account_id=account.id, actor=actor_for(request, principal), max_numbers=max_numbers
    )
