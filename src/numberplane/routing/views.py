"""Carrier endpoints of the data plane, the carrier-neutral ``/v1/route`` and ``/metrics``.

Carrier endpoints authenticate the carrier's way (``routing.verify``); anything unverifiable
gets a bare 403. ``/v1/route`` always takes an API key (the SIP platform or the user presents
one) and answers only for numbers of the key's org.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from numberplane import app as app_module
from numberplane.routing import metrics
from numberplane.routing.decide import CallInfo, Decision
from numberplane.routing.render import CARRIER_FORMAT, FORMAT_CARRIER, render
from numberplane.routing.service import Router, record, router_of
from numberplane.routing.verify import (
    AccountKey,
    MultiParams,
    signalwire_valid,
    telnyx_valid,
    twilio_valid,
    vonage_unverified_api_key,
    vonage_valid,
)
from numberplane.tenancy.auth import Principal, require_principal

log = logging.getLogger("numberplane.routing")

router = APIRouter()

MAX_BODY = 64 * 1024


def _forbidden(carrier: str) -> Response:
    metrics.SIGNATURE_FAILURES.labels(carrier).inc()
    return Response(status_code=403)


def signed_url(request: Request) -> str:
    """The URL as configured at the carrier: public URL + path (+ query, byte for byte)."""
    base = request.app.state.settings.public_url.rstrip("/")
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def _form(raw: bytes) -> MultiParams:
    return MultiParams(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


# -- Verification per carrier --------------------------------------------------------------------


async def _verify_twilio(r: Router, request: Request, url: str, params: MultiParams) -> AccountKey | None:
    signature = request.headers.get("x-twilio-signature")
    sid = params.get("AccountSid")
    if not signature or not sid:
        return None
    settings_header = request.headers.get("x-twilio-webhooks-signature-settings", "")
    for account in await r.accounts.find(("twilio", "sandbox"), ("account_sid",), sid):
        if twilio_valid(
            account.secret("auth_token") or "", url, params, signature, settings_header=settings_header
        ):
            return account
    return None


async def _verify_signalwire(
    r: Router, request: Request, url: str, params: MultiParams, raw: bytes
) -> AccountKey | None:
    signature = request.headers.get("x-signalwire-signature") or request.headers.get("x-twilio-signature")
    sha256_signature = request.headers.get("x-signalwire-sha256-signature")
    sid = params.get("AccountSid") or params.get("ProjectId")
    if not (signature or sha256_signature) or not sid:
        return None
    for account in await r.accounts.find(("signalwire",), ("project_id", "account_sid"), sid):
        key = account.secret("signing_key") or ""
        if signalwire_valid(key, url, params, raw, signature=signature, sha256_signature=sha256_signature):
            return account
    return None


async def _verify_telnyx(r: Router, request: Request, params: MultiParams, raw: bytes) -> AccountKey | None:
    signature = request.headers.get("telnyx-signature-ed25519")
    timestamp = request.headers.get("telnyx-timestamp")
    if not signature or not timestamp:
        return None
    candidates: list[AccountKey] = []
    sid = params.get("AccountSid")
    if sid:
        candidates += await r.accounts.find(("telnyx",), ("account_sid", "user_id"), sid)
    connection = params.get("ConnectionId")
    if connection:
        candidates += await r.accounts.find(
            ("telnyx",), ("connection_id", "texml_application_id"), connection
        )
    if not candidates:
        candidates = list(await r.accounts.all_of("telnyx"))
    seen: set[str] = set()
    for account in candidates:
        if account.id in seen:
            continue
        seen.add(account.id)
        public_key = account.config.get("public_key") or account.secret("public_key") or ""
        if telnyx_valid(str(public_key), raw, signature=signature, timestamp=timestamp):
            return account
    return None


async def _verify_vonage(r: Router, request: Request, raw: bytes) -> AccountKey | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    api_key = vonage_unverified_api_key(token)
    if not api_key:
        return None
    query = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    for account in await r.accounts.find(("vonage",), ("api_key",), api_key):
        secret = account.secret("signature_secret") or ""
        if vonage_valid(secret, token, raw_body=raw, query=query, method=request.method):
            return account
    return None


# -- TwiML-family carriers (form POST, XML answer) ---------------------------------------------------


async def _form_carrier(
    request: Request, carrier: str, *, fallback: bool = False, status: bool = False
) -> Response:
    started = time.perf_counter()
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _forbidden(carrier)
    r = router_of(request.app)
    params = _form(raw)
    account: AccountKey | None
    if carrier == "twilio":
        account = await _verify_twilio(r, request, signed_url(request), params)
    elif carrier == "signalwire":
        account = await _verify_signalwire(r, request, signed_url(request), params, raw)
    else:
        account = await _verify_telnyx(r, request, params, raw)
    if account is None:
        return _forbidden(carrier)
    label = account.carrier
    if status:
        call_status = params.get("CallStatus") or "unknown"
        metrics.STATUS_CALLBACKS.labels(label, call_status[:32]).inc()
        log.info(
            "call status carrier=%s call_id=%s to=%s from=%s status=%s duration=%s",
            label,
            params.get("CallSid"),
            params.get("To"),
            params.get("From"),
            call_status,
            params.get("CallDuration"),
        )
        return Response(status_code=204)
    call = CallInfo.parse(
        to=params.get("To") or params.get("Called"),
        caller=params.get("From") or params.get("Caller"),
        call_id=params.get("CallSid"),
        carrier=label,
        to_country=params.get("ToCountry") or params.get("CalledCountry"),
        caller_country=params.get("FromCountry") or params.get("CallerCountry"),
        fallback=fallback,
    )
    decision = await r.route(call, account_id=account.id)
    body, media_type = render(decision, CARRIER_FORMAT[carrier])
    record(decision, label, started)
    return Response(body, media_type=media_type)


@router.post("/voice/twilio", include_in_schema=False)
async def twilio_voice(request: Request) -> Response:
    return await _form_carrier(request, "twilio")


@router.post("/voice/twilio/fallback", include_in_schema=False)
async def twilio_fallback(request: Request) -> Response:
    return await _form_carrier(request, "twilio", fallback=True)


@router.post("/voice/twilio/status", include_in_schema=False)
async def twilio_status(request: Request) -> Response:
    return await _form_carrier(request, "twilio", status=True)


@router.post("/voice/signalwire", include_in_schema=False)
async def signalwire_voice(request: Request) -> Response:
    return await _form_carrier(request, "signalwire")


@router.post("/voice/signalwire/fallback", include_in_schema=False)
async def signalwire_fallback(request: Request) -> Response:
    return await _form_carrier(request, "signalwire", fallback=True)


@router.post("/voice/signalwire/status", include_in_schema=False)
async def signalwire_status(request: Request) -> Response:
    return await _form_carrier(request, "signalwire", status=True)


@router.post("/voice/telnyx", include_in_schema=False)
async def telnyx_voice(request: Request) -> Response:
    return await _form_carrier(request, "telnyx")


@router.post("/voice/telnyx/fallback", include_in_schema=False)
async def telnyx_fallback(request: Request) -> Response:
    return await _form_carrier(request, "telnyx", fallback=True)


@router.post("/voice/telnyx/status", include_in_schema=False)
async def telnyx_status(request: Request) -> Response:
    return await _form_carrier(request, "telnyx", status=True)


# -- Vonage (GET query or POST JSON, NCCO answer) ----------------------------------------------------


def _vonage_params(request: Request, raw: bytes) -> dict[str, Any]:
    if request.method == "GET" or not raw.strip():
        return dict(
            parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        )
    try:
        body = json.loads(raw)
    except ValueError:
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def _vonage(request: Request, *, fallback: bool = False, status: bool = False) -> Response:
    started = time.perf_counter()
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _forbidden("vonage")
    r = router_of(request.app)
    account = await _verify_vonage(r, request, raw)
    if account is None:
        return _forbidden("vonage")
    params = _vonage_params(request, raw)
    if status:
        call_status = _text(params.get("status")) or "unknown"
        metrics.STATUS_CALLBACKS.labels("vonage", call_status[:32]).inc()
        log.info(
            "call status carrier=vonage call_id=%s to=%s from=%s status=%s",
            _text(params.get("uuid")),
            _text(params.get("to")),
            _text(params.get("from")),
            call_status,
        )
        return Response(status_code=200)
    call = CallInfo.parse(
        to=_text(params.get("to")),
        caller=_text(params.get("from")) or _text(params.get("from_user")),
        call_id=_text(params.get("uuid")) or _text(params.get("conversation_uuid")),
        carrier="vonage",
        fallback=fallback,
    )
    decision = await r.route(call, account_id=account.id)
    body, media_type = render(decision, "ncco")
    record(decision, "vonage", started)
    return Response(body, media_type=media_type)


@router.api_route("/voice/vonage/answer", methods=["GET", "POST"], include_in_schema=False)
async def vonage_answer(request: Request) -> Response:
    return await _vonage(request)


@router.api_route("/voice/vonage/fallback", methods=["GET", "POST"], include_in_schema=False)
async def vonage_fallback(request: Request) -> Response:
    return await _vonage(request, fallback=True)


@router.api_route("/voice/vonage/status", methods=["GET", "POST"], include_in_schema=False)
async def vonage_status(request: Request) -> Response:
    return await _vonage(request, status=True)


@router.api_route("/voice/vonage/event", methods=["GET", "POST"], include_in_schema=False)
async def vonage_event(request: Request) -> Response:
    return await _vonage(request, status=True)


# -- Carrier-neutral route and dry run -------------------------------------------------------------


@router.get(
    "/v1/route",
    tags=["routing"],
    summary="Decide a call (SIP platforms) or preview what a carrier would receive (dry run)",
    response_model=None,
)
async def route_call(
    request: Request,
    to: str = Query(
        ..., max_length=256, description="The called number: E.164, digits, national, sip: or tel:"
    ),
    from_: str | None = Query(None, alias="from", max_length=256, description="The caller, in any form"),
    call_id: str | None = Query(None, max_length=128, description="Makes the weighted agent pick repeatable"),
    format: Literal["json", "twiml", "laml", "texml", "ncco"] = Query(
        "json", description="json: the decision; otherwise exactly the body that carrier would receive"
    ),
    webhook: bool = Query(True, description="Ask the number's inbound webhook (false: skip it)"),
    principal: Principal = Depends(require_principal),
) -> Response:
    started = time.perf_counter()
    r = router_of(request.app)
    call = CallInfo.parse(to=to, caller=from_, call_id=call_id, carrier=FORMAT_CARRIER[format])
    decision: Decision = await r.route(call, org_id=principal.org_id, ask_webhook=webhook)
    body, media_type = render(decision, format)
    record(decision, "api", started)
    headers = {"X-Numberplane-Outcome": decision.outcome, "Cache-Control": "no-store"}
    return Response(body, media_type=media_type, headers=headers)


# -- Metrics --------------------------------------------------------------------------------------


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    routing = getattr(request.app.state, "routing", None)
    if routing is not None:
        metrics.CACHE_SIZE.set(len(routing.cache))
    body = generate_latest(metrics.REGISTRY) + generate_latest(DEFAULT_REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- Lifespan: the LISTEN connection on PostgreSQL -------------------------------------------------


async def _start(app: FastAPI) -> None:
    router_of(app).start_listener()


async def _stop(app: FastAPI) -> None:
    routing: Router | None = getattr(app.state, "routing", None)
    if routing is not None:
        await routing.aclose()
        app.state.routing = None


if _start not in app_module.STARTUP_HOOKS:
    app_module.STARTUP_HOOKS.append(_start)
if _stop not in app_module.SHUTDOWN_HOOKS:
    app_module.SHUTDOWN_HOOKS.append(_stop)
