"""Retell's phone-number API at ``/retell`` (Bearer): point ``Retell(base_url=...)`` here.

``number_provider`` picks the org's carrier account of that carrier (``numbers.providers``).
Errors are ``{"status": "error", "message": ...}``: 400 for invalid input (and for a number
that is taken, so the SDK does not retry a 409), 401, and 422 for a number or agent the key
cannot see (Retell answers not-found with 422). Create and import answer 201; delete answers an
empty 204.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from numberplane.dialects import common
from numberplane.dialects import retell_map as rm
from numberplane.kernel.errors import ErrorInfo, ErrorShape
from numberplane.numbers import providers
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import (
    PhoneNumberBuy,
    PhoneNumberImportRow,
    PhoneNumberRead,
    PhoneNumberUpdate,
)

PREFIX = "/retell"
router = APIRouter(prefix=PREFIX, tags=["dialect: Retell"])
Context = Depends(common.context("retell"))
NOT_FOUND = "Cannot find requested asset under given api key."


# Retell's document lists 422 (its not-found) only for operations on an existing number; create
# and import list 400, 401, 500, so an unknown agent named in their body is a 400 there (the
# retell-sdk then raises BadRequestError, as a client of Retell expects).
_NO_422 = frozenset({PREFIX + "/create-phone-number", PREFIX + "/import-phone-number"})


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status = info.status
    message = common.message_of(info)
    if common.is_not_found(info):
        status = 400 if request.url.path in _NO_422 else 422
        message = f"{NOT_FOUND} ({message})"
    elif status in (409, 422):
        status = 400
    return JSONResponse(rm.error_body(message), status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX + "/", error_shape)


async def _one(ctx: common.Ctx, number: PhoneNumberRead) -> dict[str, Any]:
    return rm.phone_number(number, await common.agents_for(ctx, [number]))


async def _many(ctx: common.Ctx, found: list[PhoneNumberRead]) -> list[dict[str, Any]]:
    agents = await common.agents_for(ctx, found)
    return [rm.phone_number(n, agents) for n in found]


@router.post("/create-phone-number", status_code=201, summary="Buy a new phone number & bind agents")
async def create_phone_number(
    request: Request, body: rm.CreateBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    request_data = rm.buy_request(body)
    if body.number_provider:
        chosen = await providers.account_for_provider(
            db=ctx.db, org_id=ctx.org_id, provider=body.number_provider, field="number_provider"
        )
        request_data["carrier_account_id"] = chosen.id
    data = common.build(PhoneNumberBuy, request_data, names=rm.FIELD_NAMES)
    result = await numbers.buy(
        db=ctx.db, actor=ctx.actor, data=data, idempotency_key=request.headers.get("idempotency-key")
    )
    return await _one(ctx, result.number)


@router.post("/import-phone-number", status_code=201, summary="Import a number from custom telephony")
async def import_phone_number(body: rm.ImportBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    row = common.build(PhoneNumberImportRow, rm.import_row(body), names=rm.FIELD_NAMES)
    return await _one(ctx, await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row))


@router.get("/v2/list-phone-numbers", summary="List phone numbers with pagination")
async def list_phone_numbers_v2(
    limit: int = Query(50, ge=1, le=1000),
    sort_order: Literal["ascending", "descending"] = "descending",
    pagination_key: str | None = None,
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    page = await numbers.list_numbers(
        db=ctx.db,
        org_id=ctx.org_id,
        limit=limit,
        cursor=pagination_key or None,
        order="asc" if sort_order == "ascending" else "desc",
    )
    out: dict[str, Any] = {"items": await _many(ctx, page.data), "has_more": page.has_more}
    if page.next_cursor:
        out["pagination_key"] = page.next_cursor
    return out


@router.get("/list-phone-numbers", summary="List all phone numbers (legacy, unpaged)")
async def list_phone_numbers(ctx: common.Ctx = Context) -> list[dict[str, Any]]:
    return await _many(ctx, await common.all_numbers(ctx))


@router.get("/get-phone-number/{phone_number}", summary="Retrieve a phone number")
async def get_phone_number(phone_number: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    return await _one(ctx, await common.get_held(ctx, phone_number))


@router.patch("/update-phone-number/{phone_number}", summary="Update a phone number")
async def update_phone_number(
    phone_number: str, body: rm.UpdateBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number)
    common.build(PhoneNumberUpdate, rm.update_request(body, current), names=rm.FIELD_NAMES)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(PhoneNumberUpdate, rm.update_request(body, now), names=rm.FIELD_NAMES)

    return await _one(
        ctx, await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    )


@router.delete("/delete-phone-number/{phone_number}", status_code=204, summary="Delete a phone number")
async def delete_phone_number(phone_number: str, ctx: common.Ctx = Context) -> Response:
    current = await common.get_held(ctx, phone_number)
    await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return Response(status_code=204)
