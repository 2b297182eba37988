"""The data plane's hooks into call records (``numberplane.calls``).

The carrier endpoints and ``/v1/route`` call these after they have their answer; each builds
a row and hands it to the process's recorder (a list append); the trace's text is shared by the
calls of one shape of decision (``trace_of``), so a warm call pays for putting its number in.
Nothing here touches the database.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Literal

from numberplane.calls.service import Observation, duration_of, json_text, status_of
from numberplane.calls.writer import decided_row
from numberplane.kernel.db import utcnow
from numberplane.routing.decide import CallInfo, Decision, WebhookResult
from numberplane.routing.service import Lookup, Routed, Router
from numberplane.routing.snapshot import RouteSnapshot
from numberplane.routing.trace import number_in, trace_around_number, trace_text, webhook_facts

# Oldest first. An OrderedDict, because evicting a plain dict's first key (``next(iter(d))``)
# scans past every key deleted before it: ~18 us a call once the working set outgrows the cache.
_TRACES: OrderedDict[tuple[object, ...], tuple[str, str] | tuple[()] | str] = OrderedDict()
_TRACES_MAX = 16_384  # distinct shapes of decision, not numbers: bounded memory either way


def trace_of(
    route: RouteSnapshot | None,
    call: CallInfo,
    result: WebhookResult | None,
    decision: Decision,
    webhook_ms: float | None,
) -> str:
    """``trace`` as the JSON text the column stores.

    Without a webhook, the trace of a call to a known number depends on the number's E.164 (in
    its first step) and on what its snapshot says past its identity (``route[3:]``: status,
    countries, webhook, agents...), on the caller's country where the number limits countries
    and on where the call went: never on the call id. So the calls to every number of one shape
    (a million numbers bound to one agent are one shape) share one encoded text, with the number
    put in per call. Keyed per snapshot instead, as before, a bench cycling 30,000 numbers missed
    every time: 11 us a call (bench/routing.py, py-spy) against ~1 us now."""
    if result is not None:
        return trace_text(route, call, result, decision, webhook_ms)
    identity = None if route is None else route[3:]
    key = (
        identity,
        call.to if route is None else None,
        # the caller's country shapes the trace only where the number limits countries
        call.country() if route is not None and route.allowed_inbound_countries else None,
        decision.outcome,
        decision.reason,
        decision.agent_id,
        decision.agent_version,
        decision.stream_url,
        decision.sip_uri,
        decision.dial_number,
        decision.redirect_url,
    )
    shared = _TRACES.get(key)
    if shared is None:
        if len(_TRACES) >= _TRACES_MAX:
            _TRACES.popitem(last=False)
        if route is None:  # a number nobody holds: its whole text (the key holds the called address)
            shared = _TRACES[key] = trace_text(route, call, None, decision)
        else:  # () where the text cannot be shared
            shared = _TRACES[key] = trace_around_number(route, call, decision) or ()
    if isinstance(shared, str):
        return shared
    if route is None or not shared:  # no shared form: this shape's trace is written for each call
        return trace_text(route, call, None, decision)
    return number_in(shared, route.e164)


# The webhook object of every call whose webhook was not asked, one per status: shared, and
# encoded once (JSON text, as the column stores it).
_UNASKED: dict[str, str] = {}


def _unasked(status: str) -> str:
    facts = _UNASKED.get(status)
    if facts is None:
        facts = _UNASKED[status] = json.dumps(
            {"asked": False, "status": status, "latency_ms": None, "overrode_agent": False},
            separators=(",", ":"),
        )
    return facts


def decided(
    router: Router,
    routed: Routed,
    *,
    carrier: str,
    org_id: str | None,
    account_id: str | None,
    started: float,
) -> None:
    """Record a routing decision for a call (a carrier request, or ``/v1/route`` with a call id):
    its row, trace and webhook facts built here, a few microseconds (``decided_row``)."""
    recorder = router.recorder
    if recorder is None:
        return
    decision, call, route, result = routed.decision, routed.call, routed.route, routed.result
    org = route.org_id if route is not None else org_id
    if org is None:  # a platform account's call to a number nobody holds: no one to show it to
        return
    try:
        trace = trace_of(route, call, result, decision, routed.webhook_ms)
        webhook = (
            _unasked(decision.webhook)
            if result is None
            else json_text(webhook_facts(route, result, decision, routed.webhook_ms))
        )
    except Exception:  # the call is answered; its record is not
        recorder.lost(call.call_id)
        return
    # Positional arguments (the fields' order): a keyword call costs twice as much, per answer.
    recorder.add_row(
        decided_row(
            org,
            carrier,
            call.call_id or f"np-{id(decision):x}-{time.time_ns()}",
            time.time(),
            route.number_id if route is not None else None,  # phone_number_id
            call.to,  # phone_number
            call.caller or call.raw_caller,  # from_number
            account_id,  # carrier_account_id
            decision.outcome,
            decision.reason,
            decision.agent_id,
            decision.agent_version,
            webhook,
            (time.perf_counter() - started) * 1000,  # rounded where written (0.2 us a call)
            trace,
        )
    )


async def status_reported(
    router: Router,
    *,
    carrier: str,
    org_id: str | None,
    account_id: str | None,
    call_id: str | None,
    to: str | None,
    caller: str | None,
    status: str | None,
    duration: object = None,
    sip_code: int | None = None,
    route: RouteSnapshot | Literal[Lookup.PENDING] | None = Lookup.PENDING,
) -> None:
    """Record a status callback (or ``/v1/route/status``) for a call, known or not. ``route``:
    the snapshot of ``to`` when the caller has it already (``Router.route_full``'s)."""
    recorder = router.recorder
    ours = status_of(status)
    if recorder is None or not call_id or ours is None:
        return
    if route is Lookup.PENDING:
        route = await router.lookup(to) if to else None
    if route is not None and org_id is not None and route.org_id != org_id:
        route = None
    org = org_id or (route.org_id if route is not None else None)
    if org is None:
        return
    recorder.add(
        Observation(
            org_id=org,
            carrier=carrier,
            carrier_call_id=call_id[:128],
            at=utcnow(),
            phone_number_id=route.number_id if route is not None else None,
            phone_number=to,
            from_number=caller,
            carrier_account_id=account_id,
            status=ours,
            duration_s=duration_of(duration) if duration is not None else None,
            sip_code=sip_code,
        )
    )
