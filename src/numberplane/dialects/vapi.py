"""Vapi's phone-number API at ``/vapi`` (Bearer): ``Vapi(token=..., base_url="<server>/vapi")``.

``provider`` chooses the carrier: ``vapi`` buys on the org's default carrier account
(``numberDesiredAreaCode``); ``twilio`` imports from the org's Twilio account for
``twilioAccountSid`` (connected now, verified and encrypted, when the org has none);
``telnyx``, ``vonage`` and ``byo-phone-number`` import onto the carrier account, or for
``byo-phone-number`` the SIP trunk, named by ``credentialId`` (without one, the org's account of
that carrier). Create answers 201; delete answers the deleted resource. Errors are NestJS's
``{"message", "error", "statusCode"}``: 400 for invalid input (``message`` a list of
``field: problem`` strings), 401, 404 for an unknown or another org's id, 409 for a number
that is already held.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from numberplane.dialects import common
from numberplane.dialects import vapi_map as vm
from numberplane.kernel import e164
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

PREFIX = "/vapi"
router = APIRouter(prefix=PREFIX, tags=["dialect: Vapi"])
Context = Depends(common.context("vapi"))
# Rows a time-filtered list may look through.
MAX_SCAN = 100_000
TWILIO_FIELDS = {
    "account_sid": "twilioAccountSid",
    "auth_token": "twilioAuthToken",
    "api_key": "twilioApiKey",
    "api_secret": "twilioApiSecret",
}


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status = common.rest_status(info)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = info.title
    message: str | list[str]
    if status == 400 and info.errors:
        message = [f"{e.field}: {e.message}" for e in info.errors[:20]]
    elif status == 404:
        message = f"Phone Number not found ({common.message_of(info)})"
    else:
        message = common.message_of(info)
    return JSONResponse(vm.error_body(message, status, reason), status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX + "/", error_shape)


async def _render(ctx: common.Ctx, found: list[PhoneNumberRead]) -> list[dict[str, Any]]:
    ids = [n.carrier_account_id for n in found if n.carrier_account_id and n.carrier == "twilio"]
    accounts = await providers.public_ids(db=ctx.db, org_id=ctx.org_id, account_ids=ids)
    return [vm.phone_number(n, accounts) for n in found]


async def _one(ctx: common.Ctx, number: PhoneNumberRead) -> dict[str, Any]:
    return (await _render(ctx, [number]))[0]


def _require(value: Any, field: str, provider: str) -> None:
    if not value:
        raise common.invalid(field, f"is required for provider {provider}", "missing")


def _twilio_credentials(body: Any) -> providers.TwilioCredentials:
    return providers.TwilioCredentials(
        account_sid=str(body.twilioAccountSid),
        auth_token=body.twilioAuthToken,
        api_key=body.twilioApiKey,
        api_secret=body.twilioApiSecret,
        fields=TWILIO_FIELDS,
    )


async def _import_account(ctx: common.Ctx, body: vm.CreateBody) -> dict[str, Any]:
    """Where an imported number lives (other than Twilio's): a carrier account
    (``carrier_account_id``) or, for a SIP trunk, ``sip_outbound.trunk_id``. The sandbox standing
    in for a carrier means plain SIP."""
    provider = body.provider
    if body.credentialId:
        allowed = None if provider == "byo-phone-number" else (provider,)
        named = await providers.account_named(
            db=ctx.db,
            org_id=ctx.org_id,
            account_id=body.credentialId,
            carriers_allowed=allowed,
            field="credentialId",
        )
        if named is not None:
            return {} if named.is_sandbox else {"carrier_account_id": named.id}
        if provider == "byo-phone-number":
            return {"sip_outbound": {"trunk_id": body.credentialId}}
        raise common.invalid(
            "credentialId", f"carrier account {body.credentialId} not found", "unknown_account"
        )
    if provider == "byo-phone-number":
        _require(body.credentialId, "credentialId", provider)
    chosen = await providers.account_for_provider(
        db=ctx.db, org_id=ctx.org_id, provider=provider, field="provider", buying=False
    )
    return {} if chosen.is_sandbox else {"carrier_account_id": chosen.id}


@router.post("/phone-number", status_code=201, summary="Create (buy or import) a phone number")
async def create_phone_number(request: Request, body: vm.CreateBody, ctx: common.Ctx = Context) -> Any:
    if body.sipUri:
        raise common.invalid("sipUri", "SIP-URI phone numbers are not supported: give provider and a number")
    config = vm.settings(body, None)
    if body.provider == "vapi":
        data: dict[str, Any] = {"country": "US", "number_type": "local", **config}
        if body.numberDesiredAreaCode:
            data["area_code"] = body.numberDesiredAreaCode
        buy = common.build(PhoneNumberBuy, data, names=vm.FIELD_NAMES)
        result = await numbers.buy(
            db=ctx.db, actor=ctx.actor, data=buy, idempotency_key=request.headers.get("idempotency-key")
        )
        return await _one(ctx, result.number)
    _require(body.number, "number", body.provider)
    row_data = {"phone_number": body.number, **config}
    # Validated before any carrier account is connected, so a bad request writes nothing.
    row = common.build(PhoneNumberImportRow, row_data, names=vm.FIELD_NAMES)
    if body.provider == "twilio":
        _require(body.twilioAccountSid, "twilioAccountSid", body.provider)
        number = await providers.import_from_twilio(
            db=ctx.db, actor=ctx.actor, creds=_twilio_credentials(body), row=row
        )
        return await _one(ctx, number)
    where = await _import_account(ctx, body)
    row = common.build(PhoneNumberImportRow, {**row_data, **where}, names=vm.FIELD_NAMES)
    number = await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row)
    return await _one(ctx, number)


def _time_filters(bounds: dict[str, dt.datetime | None]) -> Callable[[PhoneNumberRead], bool]:
    checks: list[Callable[[PhoneNumberRead], bool]] = []
    for key, value in bounds.items():
        if value is None:
            continue
        bound = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        column, op = key[:-2], key[-2:]

        def check(n: PhoneNumberRead, column: str = column, op: str = op, bound: dt.datetime = bound) -> bool:
            # Compared at the millisecond, the precision this API shows.
            exact: dt.datetime = getattr(n, column)
            stamp = exact.replace(microsecond=exact.microsecond // 1000 * 1000)
            return {"Gt": stamp > bound, "Lt": stamp < bound, "Ge": stamp >= bound, "Le": stamp <= bound}[op]

        checks.append(check)
    return lambda n: all(c(n) for c in checks)


@router.get("/phone-number", summary="List phone numbers (newest first)")
async def list_phone_numbers(
    limit: int = Query(100, ge=1, le=1000),
    createdAtGt: dt.datetime | None = None,
    createdAtLt: dt.datetime | None = None,
    createdAtGe: dt.datetime | None = None,
    createdAtLe: dt.datetime | None = None,
    updatedAtGt: dt.datetime | None = None,
    updatedAtLt: dt.datetime | None = None,
    updatedAtGe: dt.datetime | None = None,
    updatedAtLe: dt.datetime | None = None,
    ctx: common.Ctx = Context,
) -> list[dict[str, Any]]:
    bounds = {
        "created_atGt": createdAtGt,
        "created_atLt": createdAtLt,
        "created_atGe": createdAtGe,
        "created_atLe": createdAtLe,
        "updated_atGt": updatedAtGt,
        "updated_atLt": updatedAtLt,
        "updated_atGe": updatedAtGe,
        "updated_atLe": updatedAtLe,
    }
    keep = _time_filters(bounds)
    out: list[PhoneNumberRead] = []
    cursor: str | None = None
    scanned = 0
    while len(out) < limit and scanned < MAX_SCAN:
        page = await numbers.list_numbers(db=ctx.db, org_id=ctx.org_id, limit=1000, cursor=cursor)
        scanned += len(page.data)
        out.extend(n for n in page.data if keep(n))
        if not page.has_more or not page.next_cursor:
            break
        cursor = page.next_cursor
    return await _render(ctx, out[:limit])


@router.get("/v2/phone-number", summary="List phone numbers, page by page")
async def list_phone_numbers_paginated(
    search: str | None = Query(None, max_length=100),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    sortOrder: Literal["ASC", "DESC"] = "DESC",
    sortBy: Literal["createdAt"] = "createdAt",
    limit: int = Query(100, ge=1, le=1000),
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    filters = NumberFilters(q=search or None)
    found = await numbers.list_numbers(
        db=ctx.db,
        org_id=ctx.org_id,
        filters=filters,
        limit=limit,
        offset=(page - 1) * limit,
        order="asc" if sortOrder == "ASC" else "desc",
    )
    total = await numbers.count_numbers(db=ctx.db, org_id=ctx.org_id, filters=filters)
    return {
        "results": await _render(ctx, found.data),
        "metadata": {
            "itemsPerPage": limit,
            "totalItems": total,
            "currentPage": page,
            "totalPages": (total + limit - 1) // limit,
            "hasNextPage": found.has_more,
            "sortOrder": sortOrder,
        },
    }


@router.get("/phone-number/{phone_number_id}", summary="Get a phone number")
async def get_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    return await _one(ctx, await common.get_held(ctx, phone_number_id))


def _unchanged(field: str, given: str | None, current: str | None) -> None:
    if given is not None and given != current:
        raise common.invalid(field, "cannot be changed: delete the phone number and create it again")


@router.patch("/phone-number/{phone_number_id}", summary="Update a phone number")
async def update_phone_number(
    phone_number_id: str, body: vm.UpdateBody | None = Body(default=None), ctx: common.Ctx = Context
) -> dict[str, Any]:
    body = body or vm.UpdateBody()
    current = await common.get_held(ctx, phone_number_id)
    _unchanged("provider", body.provider, vm.provider_of(current))
    if body.number is not None:
        try:
            given = e164.to_e164(body.number)
        except e164.InvalidPhoneNumber as exc:
            raise common.invalid("number", exc.reason) from None
        _unchanged("number", given, current.phone_number)
    _unchanged("credentialId", body.credentialId, vm.credential_id(current))
    if body.numberDesiredAreaCode is not None or body.sipUri is not None:
        raise common.invalid("numberDesiredAreaCode", "applies only when a number is created")
    sid = None
    if body.twilioAccountSid or body.twilioAuthToken or body.twilioApiKey:
        accounts = await providers.public_ids(
            db=ctx.db, org_id=ctx.org_id, account_ids=[current.carrier_account_id or ""]
        )
        sid = accounts.get(current.carrier_account_id or "", {}).get("account_sid")
        if vm.provider_of(current) != "twilio" or not sid:
            raise common.invalid("twilioAccountSid", "this phone number is not imported from Twilio")
        _unchanged("twilioAccountSid", body.twilioAccountSid, sid)
    # The whole request is validated before anything changes.
    common.build(PhoneNumberUpdate, vm.settings(body, current), names=vm.FIELD_NAMES)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(PhoneNumberUpdate, vm.settings(body, now), names=vm.FIELD_NAMES)

    if sid and (body.twilioAuthToken or body.twilioApiKey):
        # New secrets for the same Twilio account: checked at Twilio, then stored encrypted.
        creds = _twilio_credentials(body.model_copy(update={"twilioAccountSid": sid}))
        await providers.twilio_account(db=ctx.db, actor=ctx.actor, creds=creds)
    updated = await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    return await _one(ctx, updated)


@router.delete("/phone-number/{phone_number_id}", summary="Delete (release) a phone number")
async def delete_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number_id)
    released = await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return await _one(ctx, released)
