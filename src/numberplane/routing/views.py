"""Carrier endpoints of the data plane, the carrier-neutral ``/v1/route`` and ``/metrics``.

Carrier endpoints authenticate the carrier's way (``routing.verify``); anything unverifiable
gets a bare 403. ``/v1/route`` always takes an API key (the SIP platform or the user presents
one) and answers only for numbers of the key's org.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from numberplane.routing import api_route, metrics
from numberplane.routing.handlers import ENDPOINTS, Incoming, dispatch
from numberplane.tenancy.auth import Principal, require_principal

log = logging.getLogger("numberplane.routing")

router = APIRouter()


async def incoming_from(request: Request) -> Incoming:
    raw_path = request.scope.get("raw_path")
    return Incoming(
        app=request.app,
        method=request.method,
        path=request.url.path,
        raw_path=raw_path.decode("latin-1") if raw_path else request.url.path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=request.headers,
        body=await request.body(),
    )


async def carrier_endpoint(request: Request) -> Response:
    """Every carrier endpoint (see ``handlers.ENDPOINTS``); the fast path serves the same ones."""
    out = await dispatch(await incoming_from(request))
    if out is None:  # pragma: no cover - only routes from ENDPOINTS lead here
        return Response(status_code=404)
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


# -- Metrics --------------------------------------------------------------------------------------


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    routing = getattr(request.app.state, "routing", None)
    if routing is not None:
        metrics.CACHE_SIZE.set(len(routing.cache))
    body = generate_latest(metrics.REGISTRY) + generate_latest(DEFAULT_REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
