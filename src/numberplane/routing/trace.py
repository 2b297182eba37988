"""Why a call went where it went: ``decide``'s steps, in its order, as a person reads them.

Pure, like ``decide``: built from the same inputs (the snapshot, the call, the webhook's
answer) and the decision itself, so it can never tell a different story. Steps: ``number``
(found and active), ``country``, ``forwarding``, ``call_handler``, ``webhook``, ``agent``,
``fallback``; the trace stops at the step that decided.
"""

from __future__ import annotations

import json

from numberplane.routing.decide import CallInfo, Decision, WebhookResult
from numberplane.routing.snapshot import RouteSnapshot

Step = dict[str, str]
_Step = tuple[str, str, str]  # (step, result, detail): what ``steps`` builds, before either shape

FALLBACKS = ("fallback_number", "fallback_sip")


def _step(name: str, result: str, detail: str) -> _Step:
    return (name, result, detail)


def trace(
    route: RouteSnapshot | None,
    call: CallInfo,
    result: WebhookResult | None,
    decision: Decision,
    webhook_ms: float | None = None,
) -> list[Step]:
    """The ordered steps that led to ``decision``."""
    return [
        {"step": name, "result": outcome, "detail": detail}
        for name, outcome, detail in _steps(route, call, result, decision, webhook_ms)
    ]


_encode = json.encoder.encode_basestring_ascii  # how json.dumps writes a str (C)
_HEADS: dict[tuple[str, str], str] = {}  # '{"step":...,"result":...,"detail":' per (step, result)


def trace_text(
    route: RouteSnapshot | None,
    call: CallInfo,
    result: WebhookResult | None,
    decision: Decision,
    webhook_ms: float | None = None,
) -> str:
    """``trace`` as compact JSON text, exactly as ``json.dumps(trace(...), separators=(",", ":"))``
    writes it, without the dicts or an encoder: a call record stores one per call. Step names
    and results are a small set, so each pair's opening is written once."""
    parts = []
    for name, outcome, detail in _steps(route, call, result, decision, webhook_ms):
        head = _HEADS.get((name, outcome))
        if head is None:
            if len(_HEADS) >= 4_096:  # results are fixed words, but bound it anyway
                _HEADS.clear()
            head = _HEADS[(name, outcome)] = f'{{"step":{_encode(name)},"result":{_encode(outcome)},"detail":'
        parts.append(head + _encode(detail) + "}")
    return "[" + ",".join(parts) + "]"


_NUMBER = "\u2063e164\u2063"  # stands for the number while a shared trace is written
_NUMBER_TEXT = _encode(_NUMBER)[1:-1]


def trace_around_number(route: RouteSnapshot, call: CallInfo, decision: Decision) -> tuple[str, str] | None:
    """``trace_text`` (no webhook) for ``route``'s shape, split where the number goes: the same
    for every number with the same snapshot past its identity, so ``number_in`` fills it in per
    call. None where the number is not in the text exactly once (a tenant's own text holding the
    stand-in): then the text is written for each call."""
    parts = trace_text(route._replace(e164=_NUMBER), call, None, decision).split(_NUMBER_TEXT)
    return (parts[0], parts[1]) if len(parts) == 2 else None


def number_in(around: tuple[str, str], e164: str) -> str:
    """The trace text of ``trace_around_number`` with ``e164`` put in, encoded as JSON writes it."""
    return f"{around[0]}{_encode(e164)[1:-1]}{around[1]}"  # one string built, not two


def _steps(
    route: RouteSnapshot | None,
    call: CallInfo,
    result: WebhookResult | None,
    decision: Decision,
    webhook_ms: float | None = None,
) -> list[_Step]:
    """The ordered steps, as (step, result, detail)."""
    steps: list[_Step] = []
    if route is None:
        steps.append(
            _step("number", "unknown", f"{call.to or 'the called address'} is not a number of this org")
        )
        return steps
    if route.status != "active":
        steps.append(
            _step("number", route.status, f"{route.e164} is {route.status}, not active: not in service")
        )
        return steps
    steps.append(_step("number", "active", f"{route.e164} found and active"))
    allowed = route.allowed_inbound_countries
    if not allowed:
        steps.append(_step("country", "skipped", "no allowed_inbound_countries: callers from anywhere"))
    elif decision.reason == "caller_country_not_allowed":
        country = call.country() or "unknown"
        steps.append(
            _step("country", "rejected", f"caller's country {country} is not in {', '.join(allowed)}")
        )
        return steps
    else:
        country = call.country() or "unknown"
        steps.append(_step("country", "allowed", f"caller's country {country} is in {', '.join(allowed)}"))
    if decision.outcome == "forwarded":
        steps.append(
            _step("forwarding", "forwarded", f"outbound number: forwarded to {decision.dial_number}")
        )
        return steps
    if decision.outcome == "redirected":
        which = (
            "fallback_url (the carrier's retry)" if decision.reason.endswith("fallback") else "request_url"
        )
        steps.append(
            _step(
                "call_handler",
                decision.reason,
                f"laml_webhooks: redirected to {which} {decision.redirect_url}",
            )
        )
        return steps
    overrode = _webhook_step(steps, route, result, decision, webhook_ms)
    if decision.reason == "webhook_rejected":
        return steps
    if decision.agent_id is not None:
        steps.append(_step("agent", "picked", _agent_detail(route, decision, overrode)))
        return steps
    bound = len(route.agents)
    why = (
        "no agent is bound to the number"
        if bound == 0
        else f"none of the {bound} bound agent(s) has a stream_url or sip_uri, or every weight is 0"
    )
    steps.append(_step("agent", "none", why))
    if decision.outcome == "fallback_number":
        steps.append(
            _step("fallback", "number", f"no agent: dialled the fallback number {decision.dial_number}")
        )
    elif decision.outcome == "fallback_sip":
        steps.append(_step("fallback", "sip", f"no agent: dialled the fallback SIP URI {decision.sip_uri}"))
    else:
        steps.append(_step("fallback", "none", "no agent and no fallback: not in service"))
    return steps


def _webhook_step(
    steps: list[_Step],
    route: RouteSnapshot,
    result: WebhookResult | None,
    decision: Decision,
    webhook_ms: float | None,
) -> bool:
    """Append the webhook step; True when the webhook chose the agent."""
    if not route.inbound_webhook_url:
        steps.append(_step("webhook", "not_configured", "no inbound_webhook_url"))
        return False
    took = f" in {webhook_ms:.0f} ms" if webhook_ms is not None else ""
    if result is None:
        steps.append(_step("webhook", "not_asked", "the inbound webhook was not asked"))
        return False
    if result.status == "rejected":
        steps.append(_step("webhook", "rejected", f"the inbound webhook rejected the call{took}"))
        return False
    if result.status == "answered":
        overrode = bool(
            result.agent and result.agent.connectable and result.agent.agent_id == decision.agent_id
        )
        said = f"chose agent {result.agent.agent_id}" if overrode and result.agent else "chose no agent"
        if result.error:
            said += f" ({result.error})"
        steps.append(_step("webhook", "answered", f"the inbound webhook answered{took}: {said}"))
        return overrode
    if result.error == "skipped":
        steps.append(_step("webhook", "skipped", "not asked (a fallback request, or webhook=false)"))
        return False
    attempts = f" after {result.attempts} attempt(s)" if result.attempts else ""
    steps.append(
        _step("webhook", "failed", f"the inbound webhook failed ({result.error}){attempts}{took}; carried on")
    )
    return False


def _agent_detail(route: RouteSnapshot, decision: Decision, overrode: bool) -> str:
    version = f" v{decision.agent_version}" if decision.agent_version is not None else ""
    who = f"agent {decision.agent_id}{version}"
    target = f"stream {decision.stream_url}" if decision.stream_url else f"SIP {decision.sip_uri}"
    if overrode:
        return f"{who}, chosen by the inbound webhook; connected to {target}"
    usable = [a for a in route.agents if a.connectable and a.weight > 0]
    if len(usable) <= 1:
        return f"{who}, the number's only connectable agent; connected to {target}"
    weights = ", ".join(f"{a.agent_id}={a.weight:g}" for a in usable)
    return f"{who}, weighted pick among {len(usable)} agents ({weights}) by call id; connected to {target}"


def webhook_facts(
    route: RouteSnapshot | None, result: WebhookResult | None, decision: Decision, webhook_ms: float | None
) -> dict[str, object]:
    """The call record's ``webhook`` object."""
    asked = result is not None and result.error != "skipped"
    overrode = bool(
        result is not None
        and result.status == "answered"
        and result.agent is not None
        and result.agent.connectable
        and result.agent.agent_id == decision.agent_id
    )
    out: dict[str, object] = {
        "asked": asked,
        "status": "skipped" if result is not None and result.error == "skipped" else decision.webhook,
        "latency_ms": round(webhook_ms, 2) if asked and webhook_ms is not None else None,
        "overrode_agent": overrode,
    }
    if result is not None and result.error and asked:
        out["error"] = result.error[:200]
    return out
