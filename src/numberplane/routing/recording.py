"""The data plane's hooks into call records (``numberplane.calls``).

The carrier endpoints and ``/v1/route`` call these after they have their answer; each builds
an ``Observation`` and hands it to the process's recorder (a list append). The trace is passed
as a function, so it is built when the record is written, not on the answer's path. Nothing here
touches the database.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from functools import partial

from numberplane.calls.service import DecisionFacts, Observation, duration_of, status_of
from numberplane.kernel.db import RawJSON, utcnow
from numberplane.routing.decide import CallInfo, Decision, WebhookResult
from numberplane.routing.service import Routed, Router
from numberplane.routing.snapshot import RouteSnapshot
from numberplane.routing.trace import trace_text, webhook_facts

# Oldest first. An OrderedDict, because evicting a plain dict's first key (``next(iter(d))``)
# scans past every key deleted before it: ~18 us a call once the working set outgrows the cache.
_TRACES: OrderedDict[tuple[object, ...], RawJSON] = OrderedDict()
_TRACES_MAX = 16_384  # keys hold snapshots (mostly the route cache's own objects): bounded memory


def trace_of(
    route: RouteSnapshot | None,
    call: CallInfo,
    result: WebhookResult | None,
    decision: Decision,
    webhook_ms: float | None,
) -> RawJSON:
    """``trace`` as the JSON text the column stores, encoded once for every call whose trace is
    the same. Without a webhook it depends on the snapshot, the caller's country and where the
    call went, never on the call id, so the calls to one number share it. Kept as text: a plain
    string, which the garbage collector never walks however many are kept (oldest dropped
    first)."""
    if result is not None:
        return RawJSON(trace_text(route, call, result, decision, webhook_ms))
    key = (
        route,
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
    encoded = _TRACES.get(key)
    if encoded is None:
        if len(_TRACES) >= _TRACES_MAX:
            _TRACES.popitem(last=False)
        encoded = _TRACES[key] = RawJSON(trace_text(route, call, result, decision, webhook_ms))
    return encoded


# The webhook object of every call whose webhook was not asked, one per status: shared, and
# encoded once (JSON text, as the column stores it).
_UNASKED: dict[str, RawJSON] = {}


def _unasked(status: str) -> RawJSON:
    facts = _UNASKED.get(status)
    if facts is None:
        facts = _UNASKED[status] = RawJSON(
            json.dumps(
                {"asked": False, "status": status, "latency_ms": None, "overrode_agent": False},
                separators=(",", ":"),
            )
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
    """Record a routing decision for a call (a carrier request, or ``/v1/route`` with a call id)."""
    recorder = router.recorder
    if recorder is None:
        return
    decision, call, route = routed.decision, routed.call, routed.route
    org = route.org_id if route is not None else org_id
    if org is None:  # a platform account's call to a number nobody holds: no one to show it to
        return
    # Positional arguments (the fields' order): a keyword call costs twice as much, per answer.
    facts = DecisionFacts(
        decision.outcome,
        decision.reason,
        decision.agent_id,
        decision.agent_version,
        (
            _unasked(decision.webhook)
            if routed.result is None
            else partial(webhook_facts, route, routed.result, decision, routed.webhook_ms)
        ),
        round((time.perf_counter() - started) * 1000, 3),
        partial(trace_of, route, call, routed.result, decision, routed.webhook_ms),
    )
    recorder.add(
        Observation(
            org,
            carrier,
            call.call_id or f"np-{id(decision):x}-{time.time_ns()}",
            utcnow(),
            route.number_id if route is not None else None,  # phone_number_id
            call.to,  # phone_number
            call.caller or call.raw_caller,  # from_number
            account_id,  # carrier_account_id
            "ringing",  # status
            None,  # duration_s
            None,  # sip_code
            facts,
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
) -> None:
    """Record a status callback (or ``/v1/route/status``) for a call, known or not."""
    recorder = router.recorder
    ours = status_of(status)
    if recorder is None or not call_id or ours is None:
        return
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
