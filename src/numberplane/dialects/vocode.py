"""Vocode's numbers API at ``/vocode/v1/numbers`` (Bearer): point ``Vocode(base_url=...)`` at
``<server>/vocode``.

Errors are FastAPI's: 422 ``{"detail": [{loc, msg, type}]}`` for invalid input (what the SDK
parses as ``UnprocessableEntityError``), otherwise ``{"detail": "..."}`` (404 for a number or
agent the key cannot see, 401, 409). ``inbound_agent`` given inline is a new agent that the core
creates with the number in one operation (or, on update, a new version of the bound agent);
given as a string it is an agent id; ``"default"`` binds none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from numberplane.agents.schemas import AgentCreate, AgentRead, AgentUpdate
from numberplane.dialects import common
from numberplane.dialects import vocode_map as vm
from numberplane.kernel.errors import ErrorInfo, ErrorShape
from numberplane.kernel.pagination import MAX_PAGE
from numberplane.numbers import providers
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import (
    NumberFilters,
    PhoneNumberBuy,
    PhoneNumberImportRow,
    PhoneNumberRead,
    PhoneNumberUpdate,
)

log = logging.getLogger("numberplane.dialects.vocode")
PREFIX = "/vocode/v1/numbers"
router = APIRouter(prefix=PREFIX, tags=["dialect: Vocode"])
Context = Depends(common.context("vocode"))


def error_shape(request: Request, info: ErrorInfo) -> Response:
    message = common.message_of(info)
    if common.is_not_found(info):
        return JSONResponse({"detail": message}, status_code=404, headers=info.headers)
    if info.status in (400, 422) and (info.errors or info.code == "validation_failed"):
        detail = vm.validation_detail(info.errors) or [
            {"loc": ["body"], "msg": message, "type": "value_error"}
        ]
        return JSONResponse({"detail": detail}, status_code=422, headers=info.headers)
    return JSONResponse({"detail": message}, status_code=info.status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX, error_shape)


async def _one(ctx: common.Ctx, number: PhoneNumberRead) -> dict[str, Any]:
    return vm.phone_number(number, await common.agents_for(ctx, [number]))


def _agent_create(params: dict[str, Any]) -> AgentCreate:
    return common.build(AgentCreate, vm.agent_fields(params, update=False), names=vm.AGENT_FIELD_NAMES)


def _agent_patch(params: dict[str, Any]) -> Callable[[AgentRead], AgentUpdate]:
    """AgentUpdateParams as a core patch of the bound agent, built from it as it is."""

    def patch(existing: AgentRead) -> AgentUpdate:
        fields = vm.agent_fields(params, update=True, metadata=existing.metadata)
        return common.build(AgentUpdate, fields, names=vm.AGENT_FIELD_NAMES)

    return patch


def _with_agent(
    model: type[PhoneNumberBuy] | type[PhoneNumberImportRow], data: dict[str, Any], ref: Any
) -> tuple[Any, AgentCreate | None]:
    """The core request, and the new inbound agent when one is given inline (the core creates
    it with the number). An agent id binds that agent."""
    if isinstance(ref, dict):
        return common.build(model, data, names=vm.FIELD_NAMES), _agent_create(ref)
    if isinstance(ref, str) and ref and ref != vm.DEFAULT_AGENT:
        data = {**data, "inbound_agents": common.bindings(ref)}
    return common.build(model, data, names=vm.FIELD_NAMES), None


@router.post("/buy", summary="Buy a number")
async def buy_number(
    request: Request, body: vm.BuyBody | None = Body(default=None), ctx: common.Ctx = Context
) -> dict[str, Any]:
    body = body or vm.BuyBody()
    data: dict[str, Any] = {"country": "US", "number_type": "local"}
    area = vm.area_code_in(body.area_code)
    if area:
        data["area_code"] = area
    if body.telephony_provider:
        # The provider picks the org's account of that carrier; a connection named too must be one.
        chosen = await providers.account_for_provider(
            db=ctx.db,
            org_id=ctx.org_id,
            provider=body.telephony_provider,
            field="telephony_provider",
            account_id=body.telephony_account_connection,
        )
        data["carrier_account_id"] = chosen.id
    elif body.telephony_account_connection:
        data["carrier_account_id"] = body.telephony_account_connection
    buy, new_agent = _with_agent(PhoneNumberBuy, data, body.inbound_agent)
    result = await numbers.buy(
        db=ctx.db,
        actor=ctx.actor,
        data=buy,
        idempotency_key=request.headers.get("idempotency-key"),
        new_inbound_agent=new_agent,
    )
    return await _one(ctx, result.number)


@router.post("/link", summary="Link a number the account already holds at its carrier")
async def link_number(body: vm.LinkBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    data: dict[str, Any] = {
        "phone_number": body.phone_number,
        "carrier_account_id": body.telephony_account_connection,
    }
    if body.outbound_only is not None:
        data["outbound"] = body.outbound_only
    row, new_agent = _with_agent(PhoneNumberImportRow, data, body.inbound_agent)
    number = await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row, new_inbound_agent=new_agent)
    return await _one(ctx, number)


@router.get("/list", summary="List numbers")
async def list_numbers(
    page: int = Query(1, ge=1, le=MAX_PAGE),
    size: int = Query(50, ge=1, le=1000),
    sort_column: str | None = None,
    sort_desc: bool = True,
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    found = await numbers.list_numbers(
        db=ctx.db,
        org_id=ctx.org_id,
        limit=size,
        offset=(page - 1) * size,
        order="desc" if sort_desc else "asc",
        sort_by=vm.SORT_COLUMNS.get(sort_column or "", "created_at"),
    )
    total = await numbers.count_numbers(db=ctx.db, org_id=ctx.org_id, filters=NumberFilters())
    return {
        "items": [vm.normalized(n) for n in found.data],
        "page": page,
        "size": size,
        "has_more": found.has_more,
        "total": total,
        "total_is_estimated": False,
    }


@router.get("", summary="Get a number")
async def get_number(phone_number: str = Query(min_length=1), ctx: common.Ctx = Context) -> dict[str, Any]:
    return await _one(ctx, await common.get_held(ctx, phone_number))


@router.post("/update", summary="Update a number")
async def update_number(
    phone_number: str = Query(min_length=1),
    body: vm.UpdateBody | None = Body(default=None),
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    body = body or vm.UpdateBody()
    current = await common.get_held(ctx, phone_number)
    agent_change: numbers.InboundAgentChange | None = None
    bindings: dict[str, Any] = {}
    if "inbound_agent" in body.given():
        ref = body.inbound_agent
        if isinstance(ref, dict):
            # A new version of the bound agent, or a new agent when none is bound: decided by
            # the core inside the number's unit of work.
            agent_change = numbers.InboundAgentChange(
                patch=_agent_patch(ref), create=partial(_agent_create, ref)
            )
        else:
            bindings["inbound_agents"] = common.bindings(ref if ref != vm.DEFAULT_AGENT else None)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(
            PhoneNumberUpdate, {**vm.update_request(body, now), **bindings}, names=vm.FIELD_NAMES
        )

    patch(current)  # the whole request is refused before anything changes
    updated = await numbers.update_number(
        db=ctx.db,
        actor=ctx.actor,
        ref=current.id,
        patch=patch,
        inbound_agent=agent_change,
    )
    return await _one(ctx, updated)


@router.post("/cancel", summary="Cancel (release) a number")
async def cancel_number(phone_number: str = Query(min_length=1), ctx: common.Ctx = Context) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number)
    released = await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return await _one(ctx, released)
