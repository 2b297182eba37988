"""The carrier endpoints' logic, independent of the web framework.

Both the FastAPI routes (``routing.views``) and the pure-ASGI fast path (``routing.fastpath``)
call these with an ``Incoming`` request and send back the ``Outgoing`` answer, so the two can
never disagree. ``Incoming`` and ``Outgoing`` live in ``routing.wire``, which the signature
checks (``routing.carrier_auth``) read too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from numberplane.routing import metrics, recording
from numberplane.routing.carrier_auth import Verdict, refused
from numberplane.routing.decide import CallInfo
from numberplane.routing.render import CARRIER_FORMAT, render
from numberplane.routing.service import Router, record
from numberplane.routing.verify import MultiParams
from numberplane.routing.wire import Incoming, Outgoing

log = logging.getLogger("numberplane.routing")

MAX_BODY = 64 * 1024


def forbidden(carrier: str, verdict: Verdict | None = None, path: str = "") -> Outgoing:
    """What an unverifiable request learns: a 403 with an empty body (the reason goes to the log)."""
    refused(carrier, verdict or Verdict.refused("too_large", f"body over {MAX_BODY} bytes"), path)
    return Outgoing(403)


def parse_form(text: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True)``, faster on carriers' bodies (a
    property test holds them equal). A pair with neither ``%`` nor ``+`` is taken as it is; an
    E.164 number (``%2B`` then digits) is written back directly; anything else escaped goes
    through ``_unquote_plus``. Twilio's real requests carry 27 parameters (~1 KB, a call token
    among them): 12.6 -> 9.4 us a body; the 9 routing reads: 2.3 -> 2.2 us."""
    out: list[tuple[str, str]] = []
    append = out.append
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            if "%" in name or "+" in name:
                name = unquote_plus(name)
            if "%" in value:
                # E.164 numbers arrive as %2B...: the one escape carriers always send.
                rest = value[3:]
                if value[:3] in ("%2B", "%2b") and "%" not in rest and "+" not in rest:
                    value = "+" + rest
                else:
                    value = _unquote_plus(value)
            elif "+" in value:  # a space, as in Twilio's FromCity=SAN+FRANCISCO
                value = value.replace("+", " ")
        append((name, value))
    return out


def _unquote_plus(value: str) -> str:
    """``urllib.parse.unquote_plus(value)`` in C codecs: each ``%XX`` becomes a ``\\xXX`` escape
    (backslashes already there doubled), ``unicode_escape`` reads those as code points 0-255,
    which are the bytes that ``utf-8`` then decodes, with ``replace`` as ``unquote`` does.
    ``unquote`` loops in Python over every escape: Twilio's call token (~550 characters, ~20
    escapes) 5.5 -> 2.4 us. A value that is not ASCII or holds a malformed escape (``%`` not
    followed by two hex digits) goes to ``unquote``, which keeps such escapes as they are."""
    value = value.replace("+", " ")
    try:
        escaped = value.replace("\\", "\\\\").replace("%", "\\x").encode("ascii")
        return escaped.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
    except UnicodeError:
        return unquote(value)


def _form(raw: bytes) -> MultiParams:
    return MultiParams(parse_form(raw.decode("utf-8", "replace")))


# -- TwiML-family carriers (form POST, XML answer) ---------------------------------------------------


async def form_carrier(
    incoming: Incoming, carrier: str, *, fallback: bool = False, status: bool = False
) -> Outgoing:
    """Twilio (and sandbox), SignalWire, Telnyx: verify, then decide (or log a status callback)."""
    started = time.perf_counter()
    if len(incoming.body) > MAX_BODY:
        return forbidden(carrier)
    r: Router = incoming.router
    params = _form(incoming.body)
    call = CallInfo.parse(
        to=params.get("To") or params.get("Called"),
        caller=params.get("From") or params.get("Caller"),
        call_id=params.get("CallSid"),
        carrier=carrier,
        to_country=params.get("ToCountry") or params.get("CalledCountry"),
        caller_country=params.get("FromCountry") or params.get("CallerCountry"),
        fallback=fallback,
    )
    # The called number, looked up once: its account is the first to verify the request, and
    # the call is routed on the same snapshot (one cache lookup, one count in /metrics).
    route = await r.lookup(call.to) if call.to else None
    verdict = await r.carrier_auth.form(incoming, carrier, params, route)
    account = verdict.account
    if account is None:
        return forbidden(carrier, verdict, incoming.path)
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
        await recording.status_reported(
            r,
            carrier=label,
            org_id=account.org_id,
            account_id=account.id,
            call_id=call.call_id,
            to=call.to,
            caller=call.caller or call.raw_caller,
            status=call_status,
            duration=params.get("CallDuration"),
            sip_code=_int(params.get("SipResponseCode")),
            route=route,
        )
        return Outgoing(204)
    if label != carrier:  # the sandbox answers on Twilio's endpoint
        call = call._replace(carrier=label)
    routed = await r.route_full(call, account_id=account.id, route=route)
    decision = routed.decision
    body, media_type = render(decision, CARRIER_FORMAT[carrier])
    record(decision, label, started)
    recording.decided(r, routed, carrier=label, org_id=account.org_id, account_id=account.id, started=started)
    return Outgoing(200, body, media_type)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) <= 3 else None


# -- Vonage (GET query or POST JSON, NCCO answer) ----------------------------------------------------


def _vonage_params(incoming: Incoming) -> dict[str, Any]:
    if incoming.method == "GET" or not incoming.body.strip():
        return dict(parse_qsl(incoming.query, keep_blank_values=True))
    try:
        body = json.loads(incoming.body)
    except ValueError:
        return dict(parse_qsl(incoming.body.decode("utf-8", "replace"), keep_blank_values=True))
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def vonage(incoming: Incoming, *, fallback: bool = False, status: bool = False) -> Outgoing:
    started = time.perf_counter()
    if len(incoming.body) > MAX_BODY:
        return forbidden("vonage")
    r: Router = incoming.router
    params = _vonage_params(incoming)
    call = CallInfo.parse(
        to=_text(params.get("to")),
        caller=_text(params.get("from")) or _text(params.get("from_user")),
        call_id=_text(params.get("uuid")) or _text(params.get("conversation_uuid")),
        carrier="vonage",
        fallback=fallback,
    )
    route = await r.lookup(call.to) if call.to else None  # once, as in form_carrier
    verdict = await r.carrier_auth.vonage(incoming, route)
    if verdict.account is None:
        return forbidden("vonage", verdict, incoming.path)
    account = verdict.account
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
        await recording.status_reported(
            r,
            carrier="vonage",
            org_id=account.org_id,
            account_id=account.id,
            call_id=call.call_id,
            to=call.to,
            caller=call.caller or call.raw_caller,
            status=call_status,
            duration=params.get("duration"),
            route=route,
        )
        return Outgoing(200)
    routed = await r.route_full(call, account_id=account.id, route=route)
    decision = routed.decision
    body, media_type = render(decision, "ncco")
    record(decision, "vonage", started)
    recording.decided(
        r, routed, carrier="vonage", org_id=account.org_id, account_id=account.id, started=started
    )
    return Outgoing(200, body, media_type)


# Every carrier endpoint: (method, path) -> (handler, keyword arguments).
ENDPOINTS: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
for _carrier in ("twilio", "signalwire", "telnyx"):
    ENDPOINTS[("POST", f"/voice/{_carrier}")] = (form_carrier, {"carrier": _carrier})
    ENDPOINTS[("POST", f"/voice/{_carrier}/fallback")] = (
        form_carrier,
        {"carrier": _carrier, "fallback": True},
    )
    ENDPOINTS[("POST", f"/voice/{_carrier}/status")] = (form_carrier, {"carrier": _carrier, "status": True})
for _method in ("GET", "POST"):
    ENDPOINTS[(_method, "/voice/vonage/answer")] = (vonage, {})
    ENDPOINTS[(_method, "/voice/vonage/fallback")] = (vonage, {"fallback": True})
    ENDPOINTS[(_method, "/voice/vonage/status")] = (vonage, {"status": True})
    ENDPOINTS[(_method, "/voice/vonage/event")] = (vonage, {"status": True})


def dispatch(incoming: Incoming) -> Awaitable[Outgoing] | None:
    """The answer to a carrier endpoint request, to await; None if (method, path) is not one.
    (Not a coroutine itself: the handler's is the only one a request makes here.)"""
    entry = ENDPOINTS.get((incoming.method, incoming.path))
    if entry is None:
        return None
    handler, kwargs = entry
    answer: Awaitable[Outgoing] = handler(incoming, **kwargs)
    return answer
