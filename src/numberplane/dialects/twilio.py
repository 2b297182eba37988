"""Twilio's REST API 2010-04-01 (IncomingPhoneNumbers, AvailablePhoneNumbers) at the root path.

The official ``twilio`` client works unchanged: ``Client(key_id, secret)``, then
``client.api.base_url = "<server>"``. HTTP Basic with the API key; the ``{AccountSid}`` in every
path must be that key's id (anything else answers 401, code 20003, as Twilio does for an
account the credentials do not open). Bodies are form-encoded with Twilio's parameter names;
responses are JSON. Errors are ``{code, message, more_info, status}``: 20003 (401), 20404 (404:
an unknown or another org's sid), 21421 invalid PhoneNumber, 21451 invalid AreaCode, 21452 no
numbers found, 21422 number not available, 21405 fallback without a URL, 20001 any other
invalid parameter (all 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import phonenumbers
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from numberplane.dialects import common
from numberplane.dialects import twilio_map as tm
from numberplane.kernel.errors import ErrorInfo, ErrorShape, NotFound, Unauthorized, validation_errors
from numberplane.kernel.errors import ValidationFailed as Invalid
from numberplane.kernel.pagination import MAX_PAGE, encode_cursor
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import NumberFilters, PhoneNumberBuy, PhoneNumberRead, PhoneNumberUpdate

PREFIX = "/2010-04-01"
router = APIRouter(prefix=PREFIX + "/Accounts/{AccountSid}", tags=["dialect: Twilio"])
MAX_BODY = 64 * 1024
# Rows a filtered list page (Local/TollFree/Mobile, or a PhoneNumber with '*') may look through.
MAX_SCAN = 20_000
NOT_AVAILABLE = {"number_unavailable", "phone_number_exists", "already_exists"}


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status, message = info.status, common.message_of(info)
    code: int
    if status == 401:
        code, message = tm.AUTHENTICATE, "Authenticate"
    elif info.code == "no_numbers_available":
        status, code = 400, tm.NO_NUMBERS_FOUND
    elif info.code in NOT_AVAILABLE:
        status, code = 400, tm.NUMBER_NOT_AVAILABLE
    elif status == 404:
        code, message = tm.NOT_FOUND, f"The requested resource {request.url.path} was not found"
    elif common.is_validation(info) or info.errors:
        status = 400
        first = info.errors[0] if info.errors else None
        if first is not None and first.code.isdigit():
            code = int(first.code)
        else:
            code = tm.FIELD_CODES.get(first.field if first else "", tm.INVALID_PARAMETER)
    elif status == 405:
        code = 20004
    else:
        code = status * 100 if status >= 500 else tm.INVALID_PARAMETER
    return JSONResponse(tm.error_body(code, message, status), status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX + "/", error_shape)


async def _context(
    request: Request,
    AccountSid: str = Path(max_length=64),
    ctx: common.Ctx = Depends(common.context("twilio")),
) -> common.Ctx:
    if AccountSid != ctx.key_id:
        raise Unauthorized("the AccountSid in the path is not the authenticated API key's id")
    return ctx


Context = Depends(_context)


async def _form(request: Request, model: type[tm.BuyForm] | type[tm.UpdateForm]) -> Any:
    """The form-encoded body (Twilio sends nothing else), bounded and validated."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Invalid.field("body", f"must be at most {MAX_BODY} bytes")
    if raw and kind not in ("", "application/x-www-form-urlencoded"):
        raise Invalid.field("body", "must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise Invalid.field("body", "is not a valid form-encoded body") from None
    try:
        return model.model_validate(dict(pairs))
    except ValidationError as exc:
        raise Invalid.of(validation_errors(exc)) from None


def _one(number: PhoneNumberRead, ctx: common.Ctx) -> dict[str, Any]:
    return tm.incoming_phone_number(number, ctx.key_id)


async def _held(ctx: common.Ctx, sid: str) -> PhoneNumberRead:
    number_id = tm.id_of(sid)
    if number_id is None:
        raise NotFound(f"phone number {sid} not found", code="phone_number_not_found")
    return await common.get_held(ctx, number_id)


# ---------------------------------------------------------------------------------------------
# AvailablePhoneNumbers


@router.get("/AvailablePhoneNumbers/{CountryCode}/{Kind}.json", summary="Search for numbers to buy")
async def available_phone_numbers(
    request: Request,
    CountryCode: str,
    Kind: str,
    AreaCode: str | None = Query(None, pattern=r"^\d{3}$"),
    Contains: str | None = Query(None, max_length=32),
    SmsEnabled: bool | None = None,
    MmsEnabled: bool | None = None,
    VoiceEnabled: bool | None = None,
    FaxEnabled: bool | None = None,
    InRegion: str | None = Query(None, max_length=64),
    InLocality: str | None = Query(None, max_length=64),
    PageSize: int = Query(50, ge=1, le=1000),
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    country = CountryCode.upper()
    number_type = tm.KINDS.get(Kind)
    if number_type is None or country not in phonenumbers.SUPPORTED_REGIONS:
        raise NotFound(f"{request.url.path} not found")
    contains, pattern = tm.contains_pattern(Contains) if Contains else (None, None)
    wanted = {"sms": SmsEnabled, "mms": MmsEnabled, "voice": VoiceEnabled, "fax": FaxEnabled}
    filtering = bool(pattern or InRegion or InLocality or any(v is not None for v in wanted.values()))
    size = min(PageSize, 100)
    found = await numbers.search_available(
        db=ctx.db,
        org_id=ctx.org_id,
        country=country,
        number_type=number_type,
        area_code=AreaCode,
        contains=contains,
        limit=100 if filtering else size,
    )

    def keep(item: Any) -> bool:
        if pattern is not None and not pattern.search(item.phone_number.lstrip("+")):
            return False
        if InRegion and (item.region or "").lower() != InRegion.lower():
            return False
        if InLocality and (item.locality or "").lower() != InLocality.lower():
            return False
        return all(v is None or bool(item.capabilities.get(k)) == v for k, v in wanted.items())

    data = [tm.available_number(n) for n in found if keep(n)][:size]
    uri = tm.page_uri(request.url.path, dict(request.query_params))
    return {
        "available_phone_numbers": data,
        "uri": uri,
        "first_page_uri": uri,
        "next_page_uri": None,
        "previous_page_uri": None,
        "page": 0,
        "page_size": PageSize,
        "start": 0,
        "end": max(len(data) - 1, 0),
    }


# ---------------------------------------------------------------------------------------------
# IncomingPhoneNumbers


async def _buy(request: Request, ctx: common.Ctx, number_type: str) -> JSONResponse:
    form = await _form(request, tm.BuyForm)
    data = common.build(PhoneNumberBuy, tm.buy_request(form, number_type), names=tm.FIELD_NAMES)
    result = await numbers.buy(
        db=ctx.db, actor=ctx.actor, data=data, idempotency_key=request.headers.get("idempotency-key")
    )
    return JSONResponse(_one(result.number, ctx), status_code=201)


class _Page(BaseModel):
    data: list[PhoneNumberRead]
    has_more: bool
    next_cursor: str | None


async def _scan(
    ctx: common.Ctx,
    filters: NumberFilters,
    keep: Callable[[PhoneNumberRead], bool] | None,
    size: int,
    page: int,
    token: str | None,
) -> _Page:
    """One page of the org's numbers. Without ``keep`` it is the core's own page; with it, rows
    are read in creation order (bounded by MAX_SCAN) and kept until the page is full."""
    if keep is None:
        found = await numbers.list_numbers(
            db=ctx.db,
            org_id=ctx.org_id,
            filters=filters,
            limit=size,
            cursor=token or None,
            offset=None if token else page * size,
        )
        return _Page(data=found.data, has_more=found.has_more, next_cursor=found.next_cursor)
    skip = 0 if token else page * size
    out: list[PhoneNumberRead] = []
    cursor, scanned, exhausted = token or None, 0, False
    last_seen: str | None = None
    while len(out) <= size and scanned < MAX_SCAN:
        chunk = await numbers.list_numbers(
            db=ctx.db, org_id=ctx.org_id, filters=filters, limit=1000, cursor=cursor
        )
        for number in chunk.data:
            scanned += 1
            last_seen = number.id
            if not keep(number):
                continue
            if skip:
                skip -= 1
                continue
            out.append(number)
            if len(out) > size:
                break
        if not chunk.has_more:
            exhausted = True
            break
        cursor = chunk.next_cursor
    if len(out) > size:
        return _Page(data=out[:size], has_more=True, next_cursor=encode_cursor(out[size - 1].id))
    if not exhausted and last_seen is not None:
        # The scan bound was reached: the page is short, and the next one goes on from here.
        return _Page(data=out, has_more=True, next_cursor=encode_cursor(last_seen))
    return _Page(data=out, has_more=False, next_cursor=None)


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name) or ""
    if not raw:
        return default
    if len(raw) > 12 or not raw.lstrip("-").isdigit():
        raise Invalid.field(name, f"must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise Invalid.field(name, f"must be between {low} and {high}")
    return value


async def _list(request: Request, ctx: common.Ctx, number_type: str | None) -> dict[str, Any]:
    params = request.query_params
    size = _integer(params, "PageSize", 50, 1, 1000)
    page = _integer(params, "Page", 0, 0, MAX_PAGE)
    phone, friendly = params.get("PhoneNumber"), params.get("FriendlyName")
    origin, token = params.get("Origin"), params.get("PageToken")
    if origin not in (None, "", "twilio", "hosted"):
        raise Invalid.field("Origin", "must be twilio or hosted")
    digits, pattern = tm.number_pattern(phone) if phone else (None, None)
    filters = NumberFilters(name=(friendly or None) and friendly[:100], number=digits)
    checks: list[Callable[[PhoneNumberRead], bool]] = []
    if number_type:
        checks.append(lambda n: n.number_type == number_type)
    if pattern is not None:
        regex: re.Pattern[str] = pattern
        checks.append(lambda n: bool(regex.search(n.phone_number.lstrip("+"))))
    if origin:
        wanted = "purchased" if origin == "twilio" else "imported"
        checks.append(lambda n: n.origin == wanted)
    keep = (lambda n: all(check(n) for check in checks)) if checks else None
    found = await _scan(ctx, filters, keep, size, page, token)
    path = request.url.path
    base = {"PhoneNumber": phone, "FriendlyName": friendly, "Origin": origin, "PageSize": size}
    start = page * size
    return {
        "incoming_phone_numbers": [_one(n, ctx) for n in found.data],
        "uri": tm.page_uri(path, dict(params)),
        "first_page_uri": tm.page_uri(path, {**base, "Page": 0}),
        "next_page_uri": (
            tm.page_uri(path, {**base, "Page": page + 1, "PageToken": found.next_cursor})
            if found.has_more
            else None
        ),
        "previous_page_uri": tm.page_uri(path, {**base, "Page": page - 1}) if page > 0 else None,
        "page": page,
        "page_size": size,
        "start": start,
        "end": start + max(len(found.data) - 1, 0),
    }


@router.post("/IncomingPhoneNumbers.json", status_code=201, summary="Buy a number")
async def create_incoming(request: Request, ctx: common.Ctx = Context) -> JSONResponse:
    return await _buy(request, ctx, "local")


@router.get("/IncomingPhoneNumbers.json", summary="List the org's numbers")
async def list_incoming(request: Request, ctx: common.Ctx = Context) -> dict[str, Any]:
    return await _list(request, ctx, None)


@router.post("/IncomingPhoneNumbers/{Kind}.json", status_code=201, summary="Buy a number of one type")
async def create_incoming_kind(
    request: Request,
    Kind: str,
    ctx: common.Ctx = Context,
) -> JSONResponse:
    number_type = tm.KINDS.get(Kind)
    if number_type is not None:
        return await _buy(request, ctx, number_type)
    # Not a type: Kind is a sid, and this is an update.
    return JSONResponse(await _update(request, ctx, Kind))


@router.get("/IncomingPhoneNumbers/{Kind}.json", summary="List numbers of one type, or fetch one by sid")
async def get_incoming_kind(
    request: Request,
    Kind: str,
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    number_type = tm.KINDS.get(Kind)
    if number_type is not None:
        return await _list(request, ctx, number_type)
    return _one(await _held(ctx, Kind), ctx)


async def _update(request: Request, ctx: common.Ctx, sid: str) -> dict[str, Any]:
    current = await _held(ctx, sid)
    form = await _form(request, tm.UpdateForm)
    if form.AccountSid and form.AccountSid != ctx.key_id:
        raise Invalid.field("AccountSid", "moving a number to another account is not supported")
    common.build(PhoneNumberUpdate, tm.settings(form, current), names=tm.FIELD_NAMES)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(PhoneNumberUpdate, tm.settings(form, now), names=tm.FIELD_NAMES)

    updated = await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    return _one(updated, ctx)


@router.delete("/IncomingPhoneNumbers/{Sid}.json", status_code=204, summary="Release a number")
async def delete_incoming(Sid: str, ctx: common.Ctx = Context) -> Response:
    current = await _held(ctx, Sid)
    await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return Response(status_code=204)
