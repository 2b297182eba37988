"""Carrier endpoints of the data plane, the carrier-neutral ``/v1/route`` and ``/metrics``.

Carrier endpoints authenticate the carrier's way (``routing.verify``); anything unverifiable
gets a bare 403. ``/v1/route`` always takes an API key (the SIP platform or the user presents
one) and answers only for numbers of the key's org.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from numberplane.calls.schemas import RouteStatus
from numberplane.routing import api_route, metrics, recording
from numberplane.routing.decide import CallInfo, Decision
from numberplane.routing.handlers import ENDPOINTS, Incoming, dispatch
from numberplane.routing.render import FORMAT_CARRIER, as_json
from numberplane.routing.service import router_of
from numberplane.routing.trace import trace, webhook_facts
from numberplane.tenancy.auth import Principal, require_principal

log = logging.getLogger("numberplane.routing")

router = APIRouter()


async def incoming_from(request: Request) -> Incoming:
    raw_path = request.scope.get("raw_path")
    return Incoming(
        router=router_of(request.app),
        method=request.method,
        path=request.url.path,
        raw_path=raw_path.decode("latin-1") if raw_path else request.url.path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=request.headers,
        body=await request.body(),
    )


async def carrier_endpoint(request: Request) -> Response:
    """Every carrier endpoint (see ``handlers.ENDPOINTS``); the fast path serves the same ones."""
    answer = dispatch(await incoming_from(request))
    if answer is None:  # pragma: no cover - only routes from ENDPOINTS lead here
        return Response(status_code=404)
    out = await answer
    return Response(out.body, status_code=out.status, media_type=out.media_type)


_methods: dict[str, list[str]] = {}
for _method, _path in ENDPOINTS:
    _methods.setdefault(_path, []).append(_method)
for _path, _allowed in _methods.items():
    router.add_api_route(_path, carrier_endpoint, methods=_allowed, include_in_schema=False)


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
        ...,
        min_length=1,
        max_length=256,
        pattern=r"\S",
        description="The called number: E.164, digits, national, sip: or tel:",
    ),
    from_: str | None = Query(None, alias="from", max_length=256, description="The caller, in any form"),
    call_id: str | None = Query(None, max_length=128, description="Makes the weighted agent pick repeatable"),
    format: Literal["json", "twiml", "laml", "texml", "ncco"] = Query(
        "json", description="json: the decision; otherwise exactly the body that carrier would receive"
    ),
    webhook: bool = Query(True, description="Ask the number's inbound webhook (false: skip it)"),
    explain: bool = Query(
        False, description="Answer the decision (JSON) with its `trace`, and record no call"
    ),
    principal: Principal = Depends(require_principal),
) -> Response:
    if explain:
        r = router_of(request.app)
        call = CallInfo.parse(to=to, caller=from_, call_id=call_id, carrier=FORMAT_CARRIER[format])
        routed = await r.route_full(call, org_id=principal.org_id, ask_webhook=webhook)
        decision: Decision = routed.decision
        explained = {
            **as_json(decision),
            "webhook": webhook_facts(routed.route, routed.result, decision, routed.webhook_ms),
            "trace": trace(routed.route, call, routed.result, decision, routed.webhook_ms),
        }
        headers = {"X-Numberplane-Outcome": decision.outcome, "Cache-Control": "no-store"}
        return JSONResponse(explained, headers=headers)
    body, media_type, outcome = await api_route.answer(
        request.app,
        principal.org_id,
        to=to,
        caller=from_,
        call_id=call_id,
        fmt=format,
        webhook=webhook,
    )
    headers = {"X-Numberplane-Outcome": outcome, "Cache-Control": "no-store"}
    return Response(body, media_type=media_type, headers=headers)


@router.post(
    "/v1/route/status",
    tags=["routing"],
    summary="Report a routed call's progress (SIP platforms): ringing, in_progress, completed...",
    status_code=202,
)
async def route_status(
    request: Request, body: RouteStatus, principal: Principal = Depends(require_principal)
) -> dict[str, str]:
    """Merged into the call record ``/v1/route`` made for the same ``call_id`` (created if that
    record is missing); late or repeated reports never move a call backwards."""
    await recording.status_reported(
        router_of(request.app),
        carrier="api",
        org_id=principal.org_id,
        account_id=None,
        call_id=body.call_id,
        to=None,
        caller=None,
        status=body.status,
        duration=body.duration_s,
        sip_code=body.sip_code,
    )
    return {"object": "call_status", "call_id": body.call_id, "status": body.status}


# -- Metrics --------------------------------------------------------------------------------------


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    routing = getattr(request.app.state, "routing", None)
    if routing is not None:
        metrics.CACHE_SIZE.set(len(routing.cache))
        if routing.recorder is not None:
            metrics.CALL_RECORDS_PENDING.set(len(routing.recorder))
            metrics.CALL_RECORDS_DROPPED.set(routing.recorder.dropped + routing.recorder.failed)
    body = generate_latest(metrics.REGISTRY) + generate_latest(DEFAULT_REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
