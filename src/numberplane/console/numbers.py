"""Numbers: the list (the console's home), buying, a number's page, releasing.

Every change goes through ``numbers.service``, the same functions /v1 calls, acting as the
signed-in person. The list pages by keyset (``list_numbers``' cursor) and counts nothing, so a
page costs the same with 100 numbers or 100,000.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from numberplane.agents import service as agents_service
from numberplane.calls import reading as calls_reading
from numberplane.console.calls import number_calls
from numberplane.console.web import (
    PREFIX,
    change_form,
    db_of,
    render,
    request_id_of,
    require_user,
    see_other,
    text,
)
from numberplane.kernel.errors import ValidationFailed, validation_errors
from numberplane.kernel.pagination import encode_cursor
from numberplane.numbers import service as numbers_service
from numberplane.numbers.schemas import NumberFilters, PhoneNumberBuy, PhoneNumberRead, PhoneNumberUpdate
from numberplane.routing.decide import CallInfo
from numberplane.routing.render import FORMAT_CARRIER, FORMATS
from numberplane.routing.render import render as render_answer
from numberplane.routing.service import router_of
from numberplane.tenancy.users import SessionUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 50
SCAN_WINDOW = 10_000  # numbers a filtered page looks through at most (bench/console.py)
AGENT_ROWS = 5  # inbound agent slots on a number's form
STATUSES = (
    ("", "live"),
    ("active", "active"),
    ("pending", "pending"),
    ("releasing", "releasing"),
    ("released", "released"),
    ("failed", "failed"),
    ("all", "all"),
)
CARRIERS = ("sandbox", "twilio", "telnyx", "signalwire", "vonage", "sip")


def _short(value: str | None, limit: int) -> str | None:
    value = (value or "").strip()[:limit]
    return value or None


@router.get("")
async def numbers_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    params = request.query_params
    status = params.get("status", "")
    filters = NumberFilters(
        q=_short(params.get("q"), 100),
        status=status if status in dict(STATUSES) and status else None,
        carrier=_short(params.get("carrier"), 20),
        area_code=_short(params.get("area_code"), 5),
    )
    cursor = _short(params.get("cursor"), 200)
    db = db_of(request)
    kept = {k: v for k, v in filters.model_dump().items() if v}
    # A text or column filter may match rarely: each page then scans one window of SCAN_WINDOW
    # numbers (newest first) and says so, rather than the whole org; the next window continues.
    scanning = bool(filters.q or filters.carrier or filters.area_code)
    floor = None
    if scanning:
        floor = await numbers_service.scan_floor(
            db=db, org_id=user.org_id, status=filters.status, cursor=cursor, rows=SCAN_WINDOW
        )
    page = await numbers_service.list_numbers(
        db=db, org_id=user.org_id, filters=filters, limit=PAGE_SIZE, cursor=cursor, floor=floor
    )
    next_cursor = page.next_cursor
    older_url = None
    if next_cursor is None and floor is not None:  # this window is done; older numbers remain
        older_url = f"{PREFIX}?{urlencode({**kept, 'cursor': encode_cursor(floor)})}"
    agent_ids = sorted({b.agent_id for n in page.data for b in n.inbound_agents})
    agents = await agents_service.get_agents(db=db, org_id=user.org_id, ids=agent_ids) if agent_ids else {}
    # Calls today for this page's numbers only: one grouped query over their ids (no count of all).
    calls_today = await calls_reading.calls_since(
        db=db, org_id=user.org_id, number_ids=[n.id for n in page.data], since=calls_reading.start_of_day()
    )
    next_url = f"{PREFIX}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None
    return render(
        request,
        "numbers.html",
        numbers=page.data,
        agent_names={agent_id: a.name for agent_id, a in agents.items()},
        calls_today=calls_today,
        f=filters,
        filtered=bool(kept),
        statuses=STATUSES,
        carriers=CARRIERS,
        cursor=cursor,
        next_url=next_url,
        older_url=older_url,
        window=SCAN_WINDOW,
        first_url=f"{PREFIX}?{urlencode(kept)}" if kept else PREFIX,
    )


# -- Buying -----------------------------------------------------------------------------------------


@router.get("/buy")
async def buy_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    params = request.query_params
    area_code = (params.get("area_code") or "").strip()[:5]
    country = (params.get("country") or "US").strip().upper()[:2]
    wanted = params.get("type") or "local"
    number_type = wanted if wanted in ("local", "toll_free", "mobile") else "local"
    searched = "search" in params
    results = []
    if searched:
        if area_code and not (area_code.isdigit() and len(area_code) >= 2):
            raise ValidationFailed.field("area_code", "must be 2 to 5 digits")
        results = await numbers_service.search_available(
            db=db_of(request),
            org_id=user.org_id,
            country=country,
            number_type=number_type,
            area_code=area_code or None,
            limit=20,
        )
    return render(
        request,
        "buy.html",
        area_code=area_code,
        country=country,
        number_type=number_type,
        searched=searched,
        # One idempotency key per rendered form: a double click (or a resubmitted form) buys once.
        results=[(r, secrets.token_urlsafe(16)) for r in results],
    )


@router.post("/buy")
async def buy(request: Request) -> Response:
    user, form = await change_form(request)
    key = text(form, "idempotency_key", 100)
    if not key:
        raise ValidationFailed.field("idempotency_key", "is missing: reload the search and try again")
    try:
        data = PhoneNumberBuy.model_validate(
            {
                "phone_number": text(form, "phone_number", 32),
                "country": text(form, "country", 2) or "US",
                "type": text(form, "type", 20) or "local",
            }
        )
    except ValidationError as exc:
        raise ValidationFailed.of(validation_errors(exc)) from exc
    result = await numbers_service.buy(
        db=db_of(request),
        actor=user.actor(request_id_of(request)),
        data=data,
        idempotency_key=f"console:{user.user_id}:{key}",
    )
    notice = "pending" if result.pending else "bought"
    return see_other(f"{PREFIX}/numbers/{result.number.id}", notice)


# -- A number's page --------------------------------------------------------------------------------


async def _preview(request: Request, user: SessionUser, number: PhoneNumberRead) -> dict[str, Any] | None:
    """What the carrier would get for a call to this number now (the /v1/route dry run)."""
    params = request.query_params
    if "preview" not in params:
        return None
    wanted = params.get("format") or "twiml"
    fmt = wanted if wanted in FORMATS else "twiml"
    caller = _short(params.get("from"), 64)
    call = CallInfo.parse(
        to=number.phone_number, caller=caller, call_id="console-preview", carrier=FORMAT_CARRIER[fmt]
    )
    decision = await router_of(request.app).route(
        call, org_id=user.org_id, ask_webhook=params.get("webhook") == "1"
    )
    body, media_type = render_answer(decision, fmt)
    return {
        "format": fmt,
        "from": caller or "",
        "webhook": params.get("webhook") == "1",
        "outcome": decision.outcome,
        "reason": decision.reason,
        "body": body.decode(),
        "media_type": media_type,
    }


@router.get("/numbers/{number_id}")
async def number_page(
    number_id: str, request: Request, user: SessionUser = Depends(require_user)
) -> Response:
    db = db_of(request)
    number = await numbers_service.get_number(db=db, org_id=user.org_id, ref=number_id)
    agents = await agents_service.list_agents(db=db, org_id=user.org_id, limit=200)
    rows: list[tuple[str, str]] = [(b.agent_id, f"{b.weight:g}") for b in number.inbound_agents[:AGENT_ROWS]]
    rows += [("", "")] * (AGENT_ROWS - len(rows))
    known = {a.id for a in agents.data}
    return render(
        request,
        "number.html",
        n=number,
        agents=agents.data,
        missing_agents=[agent_id for agent_id, _ in rows if agent_id and agent_id not in known],
        agent_rows=rows,
        fallback=(number.fallback or {}).get("number") or (number.fallback or {}).get("sip_uri") or "",
        sip_endpoint=number.sip_inbound.endpoint if number.sip_inbound else "",
        countries=", ".join(number.allowed_inbound_countries or []),
        preview=await _preview(request, user, number),
        formats=FORMATS,
        live=number.status in ("active", "pending"),
        **await number_calls(request, user, number),
    )


def _patch_from(form: Any, number: PhoneNumberRead) -> dict[str, Any]:
    """The fields the form changed (only those: a concurrent change to another field is kept)."""
    patch: dict[str, Any] = {}
    name: str | None = text(form, "name", 300) or None
    if name != number.name:
        patch["name"] = name
    bindings: list[dict[str, str | None]] = []
    for i in range(AGENT_ROWS):
        agent_id = text(form, f"agent_{i}", 64)
        if agent_id:
            weight = text(form, f"weight_{i}", 20)
            bindings.append({"agent_id": agent_id, "weight": weight or None})
    current: list[dict[str, str | None]] = [
        {"agent_id": b.agent_id, "weight": f"{b.weight:g}"} for b in number.inbound_agents
    ]
    if len(bindings) == 1 and len(current) == 1:
        current[0]["weight"] = bindings[0]["weight"]  # one agent takes every call, whatever its weight
    if bindings != current:
        patch["inbound_agents"] = bindings
    url = text(form, "inbound_webhook_url", 2048) or None
    if url != number.inbound_webhook_url:
        patch["inbound_webhook_url"] = url
    fallback = text(form, "fallback", 300)
    old_fallback = (number.fallback or {}).get("number") or (number.fallback or {}).get("sip_uri") or ""
    if fallback != old_fallback:
        kind = "sip_uri" if fallback.lower().startswith(("sip:", "sips:")) else "number"
        patch["fallback"] = {kind: fallback} if fallback else None
    countries = [c.strip().upper() for c in text(form, "allowed_inbound_countries", 1500).split(",")]
    countries = [c for c in countries if c]
    if countries != (number.allowed_inbound_countries or []):
        patch["allowed_inbound_countries"] = countries or None
    sip = text(form, "sip_endpoint", 255)
    old_sip = number.sip_inbound.endpoint if number.sip_inbound else ""
    if sip != (old_sip or ""):
        if sip:
            kept = number.sip_inbound.model_dump(exclude={"password_set"}) if number.sip_inbound else {}
            patch["sip_inbound"] = {**{k: v for k, v in kept.items() if v is not None}, "endpoint": sip}
        else:
            patch["sip_inbound"] = None
    caller_id = text(form, "verified_caller_id", 32) or None
    if caller_id != number.verified_caller_id:
        patch["verified_caller_id"] = caller_id
    return patch


@router.post("/numbers/{number_id}")
async def save_number(number_id: str, request: Request) -> Response:
    user, form = await change_form(request)
    db = db_of(request)
    number = await numbers_service.get_number(db=db, org_id=user.org_id, ref=number_id)
    patch = _patch_from(form, number)
    if patch:
        try:
            update = PhoneNumberUpdate.model_validate(patch)
        except ValidationError as exc:
            raise ValidationFailed.of(validation_errors(exc)) from exc
        await numbers_service.update_number(
            db=db, actor=user.actor(request_id_of(request)), ref=number.id, patch=update
        )
    return see_other(f"{PREFIX}/numbers/{number.id}", "saved")


@router.get("/numbers/{number_id}/release")
async def release_page(
    number_id: str, request: Request, user: SessionUser = Depends(require_user)
) -> Response:
    number = await numbers_service.get_number(db=db_of(request), org_id=user.org_id, ref=number_id)
    return render(request, "release.html", n=number)


@router.post("/numbers/{number_id}/release")
async def release(number_id: str, request: Request) -> Response:
    user, _form = await change_form(request)
    read = await numbers_service.release_number(
        db=db_of(request), actor=user.actor(request_id_of(request)), ref=number_id
    )
    notice = "release_pending" if read.status == "releasing" else "released"
    return see_other(f"{PREFIX}/numbers/{read.id}", notice)
