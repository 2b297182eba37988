"""Freya Voice's phone-number API at ``/freya/api/v2`` (Bearer).

Envelope ``{success, data: {message, result}}``. ``workspaceId`` must be the key's org id and
``userId`` the org id or the presenting key's id; anything else is a 403 and nothing is written.
Errors are ``{success: false, error, message}`` (400 invalid input, 401, 403, 404 unknown or
foreign ids, 409 a number already held). ``PUT /phone-numbers`` updates several numbers at once,
all or nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from numberplane.dialects import common
from numberplane.dialects import freya_map as fm
from numberplane.kernel import e164
from numberplane.kernel.errors import ErrorInfo, ErrorShape, Forbidden
from numberplane.kernel.pagination import MAX_OFFSET
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import (
    NumberFilters,
    PhoneNumberImportRow,
    PhoneNumberRead,
    PhoneNumberUpdate,
)

PREFIX = "/freya/api/v2"
router = APIRouter(prefix=PREFIX, tags=["dialect: Freya"])
Context = Depends(common.context("freya"))


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status = common.rest_status(info)
    body: dict[str, Any] = {"success": False, "error": info.code, "message": common.message_of(info)}
    if info.errors:
        body["errors"] = [e.as_dict() for e in info.errors]
    return JSONResponse(body, status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX, error_shape)


def _check_workspace(workspace_id: str | None, ctx: common.Ctx) -> None:
    if workspace_id is not None and not common.same_org(workspace_id, ctx.principal):
        raise Forbidden(
            f"workspace {workspace_id} is not the workspace of this API key", code="workspace_forbidden"
        )


def _check_user(user_id: str, ctx: common.Ctx) -> None:
    if not (common.same_org(user_id, ctx.principal) or user_id == ctx.key_id):
        raise Forbidden(f"user {user_id} is not a user of this workspace", code="user_forbidden")


async def _shaped(ctx: common.Ctx, found: list[PhoneNumberRead]) -> list[dict[str, Any]]:
    agents = await common.agents_for(ctx, found)
    return [fm.phone_number(n, agents) for n in found]


@router.post("/phone-numbers", status_code=201, summary="Register a phone number")
async def create_phone_number(body: fm.CreateBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    _check_workspace(body.workspace_id, ctx)
    _check_user(body.user_id, ctx)
    row = common.build(PhoneNumberImportRow, fm.import_row(body, body.user_id), names=fm.FIELD_NAMES)
    number = await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row)
    (shaped,) = await _shaped(ctx, [number])
    return fm.envelope("Phone number created", {"phoneNumber": shaped})


def _patch_for(item: Any, names: dict[str, str], now: PhoneNumberRead) -> PhoneNumberUpdate:
    return common.build(PhoneNumberUpdate, fm.update_patch(item, now), names=names)


@router.put("/phone-numbers", summary="Update phone numbers (bulk, all or nothing)")
async def update_phone_numbers(body: fm.BulkUpdateBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    _check_workspace(body.workspace_id, ctx)
    patches: list[tuple[str, numbers.PatchFor]] = []
    for i, item in enumerate(body.phone_numbers):
        current = await common.get_held(ctx, item.id)
        if item.number is not None:
            try:
                same = e164.to_e164(item.number) == current.phone_number
            except e164.InvalidPhoneNumber:
                same = False
            if not same:
                raise common.invalid(
                    f"phoneNumbers[{i}].number", "cannot be changed: register the new number instead"
                )
        names = {k: f"phoneNumbers[{i}].{v}" for k, v in fm.FIELD_NAMES.items()}
        common.build(PhoneNumberUpdate, fm.update_patch(item, current), names=names)  # refuse early
        patches.append(
            # Recomputed from the number as it is inside the update's transaction (row locked).
            (current.id, partial(_patch_for, item, names))
        )
    updated = await numbers.update_numbers(db=ctx.db, actor=ctx.actor, patches=patches)
    return fm.envelope(f"{len(updated)} phone numbers updated", {"updated": await _shaped(ctx, updated)})


@router.get("/phone-numbers", summary="List phone numbers")
async def list_phone_numbers(
    workspace_id: str | None = Query(None, alias="workspaceId"),
    limit: int = Query(25, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    _check_workspace(workspace_id, ctx)
    page = await numbers.list_numbers(db=ctx.db, org_id=ctx.org_id, limit=limit, offset=offset)
    total = await numbers.count_numbers(db=ctx.db, org_id=ctx.org_id, filters=NumberFilters())
    result = {
        "phoneNumbers": await _shaped(ctx, page.data),
        "pagination": fm.pagination(total, limit, offset),
    }
    return fm.envelope("Phone numbers retrieved", result)


@router.get("/phone-numbers/{phone_number_id}", summary="Get a phone number")
async def get_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    (shaped,) = await _shaped(ctx, [await common.get_held(ctx, phone_number_id)])
    return fm.envelope("Phone number retrieved", {"phoneNumber": shaped})


@router.delete("/phone-numbers/{phone_number_id}", summary="Delete (release) a phone number")
async def delete_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number_id)
    await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return fm.envelope("Phone number deleted", {"deleted": [current.id]})
