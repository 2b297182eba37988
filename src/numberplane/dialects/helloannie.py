"""HelloAnnie's phone-number API at ``/helloannie/v1`` (Bearer).

Envelope ``{success, data, message}``; errors ``{success: false, message}`` with 400 for invalid
input, 401, 403 (an ``orgId`` that is not the key's org), 404 (unknown or foreign ids, a
``botId`` that is not the org's agent), 409. Create buys a US local number on the org's default
carrier account (the sandbox unless configured otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from numberplane.dialects import common
from numberplane.dialects import helloannie_map as hm
from numberplane.kernel.errors import ErrorInfo, ErrorShape, Forbidden
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import PhoneNumberBuy, PhoneNumberRead, PhoneNumberUpdate

PREFIX = "/helloannie/v1"
router = APIRouter(prefix=PREFIX, tags=["dialect: HelloAnnie"])
Context = Depends(common.context("helloannie"))


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status = common.rest_status(info)
    body: dict[str, Any] = {"success": False, "message": common.message_of(info)}
    if info.errors:
        body["errors"] = [e.as_dict() for e in info.errors]
    return JSONResponse(body, status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX, error_shape)


def _check_org(org_id: str | None, ctx: common.Ctx) -> None:
    if org_id is not None and not common.same_org(org_id, ctx.principal):
        raise Forbidden(f"orgId {org_id} is not the organization of this API key", code="org_forbidden")


async def _one(ctx: common.Ctx, number: PhoneNumberRead, message: str | None = None) -> dict[str, Any]:
    agents = await common.agents_for(ctx, [number])
    return hm.envelope(hm.phone_number(number, agents), message)


@router.post("/phone-numbers", summary="Purchase and create a phone number")
async def create_phone_number(
    request: Request, body: hm.CreateBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    _check_org(body.org_id, ctx)
    data = common.build(PhoneNumberBuy, hm.buy_request(body), names=hm.FIELD_NAMES)
    result = await numbers.buy(
        db=ctx.db, actor=ctx.actor, data=data, idempotency_key=request.headers.get("idempotency-key")
    )
    return await _one(ctx, result.number, "Phone number purchased")


@router.get("/phone-numbers", summary="List phone numbers")
async def list_phone_numbers(orgId: str | None = None, ctx: common.Ctx = Context) -> dict[str, Any]:
    _check_org(orgId, ctx)
    found = await common.all_numbers(ctx)
    agents = await common.agents_for(ctx, found)
    return hm.envelope({"phoneNumbers": [hm.phone_number(n, agents) for n in found]})


@router.get("/phone-numbers/{phone_number_id}", summary="Get a phone number")
async def get_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    return await _one(ctx, await common.get_held(ctx, phone_number_id))


@router.patch("/phone-numbers/{phone_number_id}", summary="Update a phone number")
async def update_phone_number(
    phone_number_id: str, body: hm.UpdateBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number_id)
    common.build(PhoneNumberUpdate, hm.update_request(body, current), names=hm.FIELD_NAMES)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(PhoneNumberUpdate, hm.update_request(body, now), names=hm.FIELD_NAMES)

    updated = await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    return await _one(ctx, updated, "Phone number updated")


@router.post("/phone-numbers/{phone_number_id}/attach", summary="Attach a phone number to a bot")
async def attach_phone_number(
    phone_number_id: str, body: hm.AttachBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number_id)
    patch = common.build(PhoneNumberUpdate, hm.attach_request(body), names=hm.FIELD_NAMES)
    updated = await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    return await _one(ctx, updated, "Phone number attached")


@router.delete("/phone-numbers/{phone_number_id}", summary="Release a phone number")
async def delete_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number_id)
    released = await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return {"success": True, "data": {"id": released.id}, "message": "Phone number released"}
