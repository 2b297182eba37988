"""The data plane's hooks into call records (``numberplane.calls``).

The carrier endpoints and ``/v1/route`` call these after they have their answer; each builds
an ``Observation`` and hands it to the process's recorder (a list append). The trace is passed
as a function, so it is built when the record is written, not on the answer's path. Nothing here
touches the database.
"""

from __future__ import annotations

import time
from functools import partial

from numberplane.calls.service import DecisionFacts, Observation, duration_of, status_of
from numberplane.kernel.db import utcnow
from numberplane.routing.service import Routed, Router
from numberplane.routing.trace import trace, webhook_facts


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
    facts = DecisionFacts(
        outcome=decision.outcome,
        reason=decision.reason,
        agent_id=decision.agent_id,
        agent_version=decision.agent_version,
        webhook=webhook_facts(route, routed.result, decision, routed.webhook_ms),
        decision_ms=round((time.perf_counter() - started) * 1000, 3),
        trace=partial(trace, route, call, routed.result, decision, routed.webhook_ms),
    )
    recorder.add(
        Observation(
            org_id=org,
            carrier=carrier,
            carrier_call_id=call.call_id or f"np-{id(decision):x}-{time.time_ns()}",
            at=utcnow(),
            phone_number_id=route.number_id if route is not None else None,
            phone_number=call.to,
            from_number=call.caller or call.raw_caller,
            carrier_account_id=account_id,
            status="ringing",
            decision=facts,
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
