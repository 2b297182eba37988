"""Zudu's phone-number API at ``/zudu/api/phone-numbers`` (``X-API-KEY`` + ``X-API-SECRET``).

Every response is ``{message, status, error, data}``; errors carry ``status: "error"``, the
HTTP reason in ``error`` and ``data: null`` (400 invalid input, 401, 404 unknown or foreign
number or agent, 409 a number already held). The E.164 number is the id in the path (``+`` or
``%2B``). The org is the key's; ``organization_id`` in responses is the org's id.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from numberplane.dialects import common
from numberplane.dialects import zudu_map as zm
from numberplane.kernel.errors import ErrorInfo, ErrorShape, Forbidden
from numberplane.kernel.pagination import MAX_PAGE
from numberplane.numbers import providers
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import (
    NumberFilters,
    PhoneNumberImportRow,
    PhoneNumberRead,
    PhoneNumberUpdate,
)

PREFIX = "/zudu/api/phone-numbers"
router = APIRouter(prefix=PREFIX, tags=["dialect: Zudu"])
Context = Depends(common.context("zudu"))


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status = common.rest_status(info)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = info.title
    body = {"message": common.message_of(info), "status": "error", "error": reason, "data": None}
    return JSONResponse(body, status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX, error_shape)


def _check_org(organization_id: str | None, ctx: common.Ctx) -> None:
    if organization_id is not None and not common.same_org(organization_id, ctx.principal):
        raise Forbidden(
            f"organization {organization_id} is not the organization of this API key", code="org_forbidden"
        )


async def _one(ctx: common.Ctx, number: PhoneNumberRead) -> dict[str, Any]:
    return zm.phone_number(number, await common.agents_for(ctx, [number]))


async def _list(ctx: common.Ctx, query: zm.ListBody) -> dict[str, Any]:
    _check_org(query.organization_id, ctx)
    criteria = query.filter_criteria or zm.FilterCriteria()
    area = str(criteria.area_code) if criteria.area_code not in (None, "") else None
    # nickname is text in the name only (digits in it do not match the number).
    filters = NumberFilters(
        name=criteria.nickname or None, area_code=area, agent_id=criteria.agent_id or None
    )
    sort_by = query.sort_by or "created_at"
    page = await numbers.list_numbers(
        db=ctx.db,
        org_id=ctx.org_id,
        filters=filters,
        limit=query.limit,
        offset=query.page * query.limit,
        order="asc" if query.sort_order == "ascending" else "desc",
        sort_by=zm.sort_column(sort_by),
    )
    total = await numbers.count_numbers(db=ctx.db, org_id=ctx.org_id, filters=filters)
    agents = await common.agents_for(ctx, page.data)
    total_pages = (total + query.limit - 1) // query.limit
    data = {
        "organization_id": ctx.org_id,
        "phone_numbers": [zm.phone_number(n, agents) for n in page.data],
        "returned_count": len(page.data),
        "pagination": {
            "page": query.page,
            "limit": query.limit,
            "total_pages": total_pages,
            "total_count": total,
            "has_next": page.has_more,
            "has_previous": query.page > 0,
        },
        "sort_order": query.sort_order,
        "sort_by": sort_by,
        "applied_filters": {
            k: v
            for k, v in {
                "nickname": criteria.nickname,
                "area_code": criteria.area_code,
                "agent_id": criteria.agent_id,
            }.items()
            if v not in (None, "")
        },
    }
    return zm.envelope("Phone numbers retrieved successfully", data)


@router.post("/create", summary="Create (register) a phone number")
async def create_phone_number(body: zm.CreateBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    _check_org(body.organization_id, ctx)
    data = zm.create_row(body)
    common.build(PhoneNumberImportRow, data, names=zm.FIELD_NAMES)
    if body.number_provider:
        # Registered at the org's account of that carrier (checked there), or, while the sandbox
        # stands in for every carrier, over the org's SIP trunk as before.
        chosen = await providers.account_for_provider(
            db=ctx.db, org_id=ctx.org_id, provider=body.number_provider, field="number_provider", buying=False
        )
        if not chosen.is_sandbox:
            data["carrier_account_id"] = chosen.id
    row = common.build(PhoneNumberImportRow, data, names=zm.FIELD_NAMES)
    number = await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row)
    return zm.envelope("Phone number created successfully", await _one(ctx, number))


@router.post("/import", summary="Import a phone number from Twilio or Plivo")
async def import_phone_number(body: zm.ImportBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    _check_org(body.organization_id, ctx)
    row = common.build(PhoneNumberImportRow, zm.import_row(body), names=zm.FIELD_NAMES)
    number = await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row)
    caps = number.capabilities or {}
    data = {
        "phone_number": await _one(ctx, number),
        "validation_result": {
            "phone_number": number.phone_number,
            "friendly_name": number.name or number.phone_number_pretty,
            "capabilities": {"voice": bool(caps.get("voice")), "sms": bool(caps.get("sms"))},
            "status": number.status,
            "message": "Registered for delivery over the org's SIP trunk; not verified at the provider",
        },
        "import_details": {
            "imported_at": common.epoch_ms(number.created_at),
            "organization_id": number.org_id,
            "provider": body.provider,
        },
    }
    return zm.envelope("Phone number imported successfully", data)


@router.get("", summary="List phone numbers")
async def list_phone_numbers(
    limit: int = Query(50, ge=1, le=1000),
    page: int = Query(0, ge=0, le=MAX_PAGE),
    sort_by: str | None = None,
    sort_order: Literal["ascending", "descending"] = "descending",
    nickname: str | None = None,
    area_code: str | None = None,
    agent_id: str | None = None,
    organization_id: str | None = None,
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    query = zm.ListBody(
        organization_id=organization_id,
        page=page,
        limit=limit,
        sort_by=sort_by,
        sort_order=sort_order,
        filter_criteria=zm.FilterCriteria(nickname=nickname, area_code=area_code, agent_id=agent_id),
    )
    return await _list(ctx, query)


@router.post("/list", summary="List phone numbers (filters in the body)")
async def list_phone_numbers_post(
    body: zm.ListBody | None = Body(default=None), ctx: common.Ctx = Context
) -> dict[str, Any]:
    return await _list(ctx, body or zm.ListBody())


@router.get("/available", summary="The org's numbers with no agent assigned")
async def available_phone_numbers(ctx: common.Ctx = Context) -> dict[str, Any]:
    found = await common.all_numbers(ctx, NumberFilters(unassigned=True))
    agents = await common.agents_for(ctx, found)
    data = {
        "organization_id": ctx.org_id,
        "available_count": len(found),
        "phone_numbers": [zm.phone_number(n, agents) for n in found],
    }
    return zm.envelope("Available phone numbers retrieved successfully", data)


@router.get("/{phone_number}", summary="Get a phone number")
async def get_phone_number(phone_number: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    number = await common.get_held(ctx, phone_number)
    return zm.envelope("Phone number retrieved successfully", await _one(ctx, number))


@router.patch("/{phone_number}", summary="Update a phone number")
async def update_phone_number(
    phone_number: str, body: zm.UpdateBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    _check_org(body.organization_id, ctx)
    current = await common.get_held(ctx, phone_number)
    common.build(PhoneNumberUpdate, zm.update_request(body, current), names=zm.FIELD_NAMES)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(PhoneNumberUpdate, zm.update_request(body, now), names=zm.FIELD_NAMES)

    updated = await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    return zm.envelope("Phone number updated successfully", await _one(ctx, updated))


@router.delete("/{phone_number}", summary="Delete a phone number")
async def delete_phone_number(phone_number: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number)
    await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    data = {
        "phone_number": current.phone_number,
        "organization_id": current.org_id,
        "cleanup_results": zm.cleanup_results(current),
    }
    return zm.envelope("Phone number deleted successfully", data)
