"""SignalWire RELAY REST phone numbers at ``/api/relay/rest`` (HTTP Basic ``key_id:secret``).

Its SDK takes only a host: ``RestClient(project=<key id>, token=<secret>, host="127.0.0.1:8080")``
(plain http for loopback hosts, https otherwise). Update is PUT, release answers an empty 204,
purchase 200 and import 201. Errors: 422 ``{"errors": [{detail, status, title, code}]}`` for
invalid input or a number that cannot be had; ``{"error": "Not Found"}`` (404),
``{"error": "Unauthorized"}`` (401) and the like otherwise.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from numberplane.dialects import common
from numberplane.dialects import signalwire_map as sm
from numberplane.kernel.errors import ErrorInfo, ErrorShape
from numberplane.kernel.pagination import MAX_PAGE
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import (
    NumberFilters,
    PhoneNumberBuy,
    PhoneNumberImportRow,
    PhoneNumberRead,
    PhoneNumberUpdate,
)

PREFIX = "/api/relay/rest"
router = APIRouter(prefix=PREFIX, tags=["dialect: SignalWire"])
Context = Depends(common.context("signalwire"))


# Operations whose documented errors have no 422 (the TypeSpec: list 400, 401, 500; search 401,
# 500): invalid input there is a 400 in the Space API's shape, still naming the field.
_NO_422 = frozenset({("GET", PREFIX + "/phone_numbers"), ("GET", PREFIX + "/phone_numbers/search")})


def error_shape(request: Request, info: ErrorInfo) -> Response:
    status = info.status
    invalid = status in (409, 422) or (status == 400 and info.errors)
    if invalid and (request.method, request.url.path) in _NO_422:
        detail = [f"{e.field} {e.message}" for e in info.errors] or [common.message_of(info)]
        return JSONResponse({"error": "Bad Request", "detail": detail}, status_code=400, headers=info.headers)
    if invalid:
        errors = [
            {"detail": f"{e.field} {e.message}", "status": "422", "title": "Invalid Attribute", "code": "422"}
            for e in info.errors
        ] or [{"detail": common.message_of(info), "status": "422", "title": info.title, "code": "422"}]
        return JSONResponse({"errors": errors}, status_code=422, headers=info.headers)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = info.title
    return JSONResponse({"error": reason}, status_code=status, headers=info.headers)


ERROR_SHAPE: ErrorShape = (PREFIX + "/", error_shape)


def _link(request: Request, **params: Any) -> str:
    query = {k: v for k, v in params.items() if v is not None}
    return str(request.url.replace_query_params(**query))


@router.get("/phone_numbers", summary="List phone numbers")
async def list_phone_numbers(
    request: Request,
    filter_name: str | None = None,
    filter_number: str | None = None,
    page_number: int = Query(0, ge=0, le=MAX_PAGE),
    page_size: int = Query(50, ge=1, le=1000),
    page_token: str | None = None,
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    # filter_name is text in the name only; filter_number digits in the number only.
    filters = NumberFilters(name=filter_name or None, number=filter_number or None)
    page = await numbers.list_numbers(
        db=ctx.db,
        org_id=ctx.org_id,
        filters=filters,
        limit=page_size,
        cursor=page_token or None,
        offset=None if page_token else page_number * page_size,
    )
    base = {"filter_name": filter_name, "filter_number": filter_number, "page_size": page_size}
    links: dict[str, str | None] = {
        "self": str(request.url),
        "first": _link(request, **base, page_number=0),
        "next": (
            _link(request, **base, page_number=page_number + 1, page_token=page.next_cursor)
            if page.has_more
            else None
        ),
        "prev": _link(request, **base, page_number=page_number - 1) if page_number > 0 else None,
    }
    return {"links": links, "data": [sm.phone_number(n) for n in page.data]}


@router.get("/phone_numbers/search", summary="Search for available phone numbers")
async def search_phone_numbers(
    request: Request,
    areacode: str | None = Query(None, pattern=r"^\d{3}$"),
    number_type: Literal["local", "toll-free", "tollfree"] = "local",
    starts_with: str | None = Query(None, pattern=r"^\d{3,7}$"),
    contains: str | None = Query(None, pattern=r"^\d{3,7}$"),
    ends_with: str | None = Query(None, pattern=r"^\d{3,7}$"),
    max_results: int = Query(50, ge=1, le=100),
    region: str | None = None,
    city: str | None = None,
    ctx: common.Ctx = Context,
) -> dict[str, Any]:
    patterns = [p for p in (starts_with, contains, ends_with) if p]
    if len(patterns) > 1:
        raise common.invalid("starts_with", "use only one of starts_with, contains and ends_with")
    found = await numbers.search_available(
        db=ctx.db,
        org_id=ctx.org_id,
        country="US",
        number_type=sm.number_type_in(number_type),
        area_code=areacode,
        contains=patterns[0] if patterns else None,
        limit=max_results,
    )
    data = [sm.available_number(n) for n in found if sm.matches(n.phone_number, starts_with, ends_with)]
    return {"links": {"self": str(request.url)}, "data": data}


@router.post("/phone_numbers", summary="Purchase a phone number")
async def purchase_phone_number(
    request: Request, body: sm.PurchaseBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    data = common.build(PhoneNumberBuy, {"phone_number": body.number}, names=sm.FIELD_NAMES)
    result = await numbers.buy(
        db=ctx.db, actor=ctx.actor, data=data, idempotency_key=request.headers.get("idempotency-key")
    )
    return sm.phone_number(result.number)


@router.get("/phone_numbers/{phone_number_id}", summary="Get a phone number")
async def get_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> dict[str, Any]:
    return sm.phone_number(await common.get_held(ctx, phone_number_id))


@router.put("/phone_numbers/{phone_number_id}", summary="Update a phone number")
async def update_phone_number(
    phone_number_id: str, body: sm.UpdateBody, ctx: common.Ctx = Context
) -> dict[str, Any]:
    current = await common.get_held(ctx, phone_number_id)
    common.build(PhoneNumberUpdate, sm.update_request(body, current), names=sm.FIELD_NAMES)

    def patch(now: PhoneNumberRead) -> PhoneNumberUpdate:  # on the locked row (no lost update)
        return common.build(PhoneNumberUpdate, sm.update_request(body, now), names=sm.FIELD_NAMES)

    return sm.phone_number(
        await numbers.update_number(db=ctx.db, actor=ctx.actor, ref=current.id, patch=patch)
    )


@router.delete("/phone_numbers/{phone_number_id}", status_code=204, summary="Release a phone number")
async def release_phone_number(phone_number_id: str, ctx: common.Ctx = Context) -> Response:
    current = await common.get_held(ctx, phone_number_id)
    await numbers.release_number(db=ctx.db, actor=ctx.actor, ref=current.id)
    return Response(status_code=204)


@router.post(
    "/imported_phone_numbers", status_code=201, summary="Import a phone number from another provider"
)
async def import_phone_number(body: sm.ImportBody, ctx: common.Ctx = Context) -> dict[str, Any]:
    row = common.build(PhoneNumberImportRow, sm.import_row(body), names=sm.FIELD_NAMES)
    return sm.phone_number(await numbers.import_one(db=ctx.db, actor=ctx.actor, row=row))
