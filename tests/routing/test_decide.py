"""decide(): every branch, in order, table-driven; properties with hypothesis."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from numberplane.routing.decide import (
    NOT_IN_SERVICE_MESSAGE,
    OUTCOMES,
    CallInfo,
    WebhookResult,
    decide,
    needs_webhook,
    pick_agent,
)
from numberplane.routing.recording import trace_of
from numberplane.routing.snapshot import AgentTarget, CallHandlerView, RouteSnapshot
from numberplane.routing.trace import trace, trace_text

NUMBER = "+14155550100"
CALLER_US = "+12125550123"
CALLER_GB = "+442079460123"

STREAM = AgentTarget("ag_stream", 3, 1.0, stream_url="wss://agents.example.com/s")
SIP = AgentTarget("ag_sip", 1, 1.0, sip_uri="sip:agent@sip.example.com")
NO_CONNECT = AgentTarget("ag_none", 2, 1.0)
OVERRIDE = AgentTarget("ag_override", 7, 1.0, stream_url="wss://override.example.com/s", pinned=True)
LAML = CallHandlerView(
    type="laml_webhooks",
    request_url="https://customer.example.com/laml",
    request_method="GET",
    fallback_url="https://customer.example.com/fallback",
)


def snap(**kw: Any) -> RouteSnapshot:
    base: dict[str, Any] = {
        "number_id": "num_1",
        "org_id": "org_1",
        "e164": NUMBER,
        "status": "active",
        "carrier": "twilio",
        "carrier_account_id": "acct_1",
    }
    base.update(kw)
    return RouteSnapshot(**base)


def call(caller: str | None = CALLER_US, carrier: str = "twilio", **kw: Any) -> CallInfo:
    return CallInfo.parse(to=NUMBER, caller=caller, call_id=kw.pop("call_id", "CA123"), carrier=carrier, **kw)


ANSWERED = WebhookResult(
    status="answered", agent=OVERRIDE, dynamic_variables={"name": "Ada"}, metadata={"k": 1}
)
ANSWERED_NO_OVERRIDE = WebhookResult(status="answered", dynamic_variables={"tier": "gold"})
REJECTED = WebhookResult(status="rejected")
FAILED = WebhookResult.failed("timeout", 3)

# (id, route, call, webhook result, expected outcome, expected reason, checks on the decision)
CASES: list[tuple[str, RouteSnapshot | None, CallInfo, WebhookResult | None, str, str, dict[str, Any]]] = [
    (
        "1 unknown",
        None,
        call(),
        None,
        "not_in_service",
        "unknown_number",
        {"message": NOT_IN_SERVICE_MESSAGE},
    ),
    ("1 released", snap(status="released"), call(), None, "not_in_service", "number_released", {}),
    (
        "1 pending",
        snap(status="pending", agents=(STREAM,)),
        call(),
        None,
        "not_in_service",
        "number_pending",
        {},
    ),
    (
        "1 releasing",
        snap(status="releasing", agents=(STREAM,)),
        call(),
        None,
        "not_in_service",
        "number_releasing",
        {},
    ),
    (
        "1 beats everything",
        snap(
            status="released",
            allowed_inbound_countries=("GB",),
            outbound=True,
            callback_forwarding_number=CALLER_US,
        ),
        call(),
        REJECTED,
        "not_in_service",
        "number_released",
        {},
    ),
    (
        "2 country not allowed",
        snap(allowed_inbound_countries=("GB",), agents=(STREAM,)),
        call(CALLER_US),
        None,
        "rejected",
        "caller_country_not_allowed",
        {},
    ),
    (
        "2 unparseable caller with a country list",
        snap(allowed_inbound_countries=("US",), agents=(STREAM,)),
        call("anonymous"),
        None,
        "rejected",
        "caller_country_not_allowed",
        {},
    ),
    (
        "2 allowed country goes on",
        snap(allowed_inbound_countries=("GB", "US"), agents=(STREAM,)),
        call(CALLER_US),
        None,
        "agent_stream",
        "agent",
        {},
    ),
    (
        "2 empty list allows all",
        snap(allowed_inbound_countries=None, agents=(STREAM,)),
        call(CALLER_GB),
        None,
        "agent_stream",
        "agent",
        {},
    ),
    (
        "2 beats forwarding",
        snap(allowed_inbound_countries=("GB",), outbound=True, callback_forwarding_number="+14155550199"),
        call(CALLER_US),
        None,
        "rejected",
        "caller_country_not_allowed",
        {},
    ),
    (
        "3 callback forwarding",
        snap(outbound=True, callback_forwarding_number="+14155550199", call_handler=LAML, agents=(STREAM,)),
        call(),
        None,
        "forwarded",
        "callback_forwarding",
        {"dial_number": "+14155550199"},
    ),
    (
        "3 needs outbound",
        snap(outbound=False, callback_forwarding_number="+14155550199", agents=(STREAM,)),
        call(),
        None,
        "agent_stream",
        "agent",
        {},
    ),
    (
        "3 outbound without forwarding goes on",
        snap(outbound=True, agents=(SIP,)),
        call(),
        None,
        "agent_sip",
        "agent",
        {},
    ),
    (
        "4 laml redirect",
        snap(call_handler=LAML, inbound_webhook_url="https://hook.example.com", agents=(STREAM,)),
        call(),
        ANSWERED,
        "redirected",
        "laml_webhooks",
        {"redirect_url": "https://customer.example.com/laml", "redirect_method": "GET"},
    ),
    (
        "4 laml fallback request",
        snap(call_handler=LAML),
        call(fallback=True),
        None,
        "redirected",
        "laml_webhooks_fallback",
        {"redirect_url": "https://customer.example.com/fallback"},
    ),
    (
        "4 laml on signalwire",
        snap(call_handler=LAML),
        call(carrier="signalwire"),
        None,
        "redirected",
        "laml_webhooks",
        {},
    ),
    (
        "4 laml not on vonage",
        snap(call_handler=LAML, agents=(STREAM,)),
        call(carrier="vonage"),
        None,
        "agent_stream",
        "agent",
        {},
    ),
    (
        "4 agents handler goes on",
        snap(call_handler=CallHandlerView(type="agents"), agents=(STREAM,)),
        call(),
        None,
        "agent_stream",
        "agent",
        {},
    ),
    (
        "5 webhook rejects",
        snap(inbound_webhook_url="https://hook.example.com", agents=(STREAM,)),
        call(),
        REJECTED,
        "rejected",
        "webhook_rejected",
        {"webhook": "rejected"},
    ),
    (
        "5 webhook overrides agent",
        snap(inbound_webhook_url="https://hook.example.com", agents=(STREAM,)),
        call(),
        ANSWERED,
        "agent_stream",
        "agent",
        {
            "agent_id": "ag_override",
            "agent_version": 7,
            "stream_url": "wss://override.example.com/s",
            "dynamic_variables": {"name": "Ada"},
            "metadata": {"k": 1},
            "webhook": "answered",
        },
    ),
    (
        "5 webhook overrides when the number has no agent",
        snap(inbound_webhook_url="https://hook.example.com", fallback_number="+14155550177"),
        call(),
        ANSWERED,
        "agent_stream",
        "agent",
        {"agent_id": "ag_override"},
    ),
    (
        "5 webhook answers without override",
        snap(inbound_webhook_url="https://hook.example.com", agents=(SIP,)),
        call(),
        ANSWERED_NO_OVERRIDE,
        "agent_sip",
        "agent",
        {"agent_id": "ag_sip", "dynamic_variables": {"tier": "gold"}, "webhook": "answered"},
    ),
    (
        "5 webhook failed carries on",
        snap(inbound_webhook_url="https://hook.example.com", agents=(SIP,)),
        call(),
        FAILED,
        "agent_sip",
        "agent",
        {"webhook": "failed", "dynamic_variables": {}},
    ),
    (
        "5 webhook failed and no agent: fallback",
        snap(inbound_webhook_url="https://hook.example.com", fallback_sip_uri="sip:desk@pbx.example.com"),
        call(),
        FAILED,
        "fallback_sip",
        "no_agent",
        {"webhook": "failed"},
    ),
    (
        "5 webhook not asked",
        snap(inbound_webhook_url="https://hook.example.com", agents=(STREAM,)),
        call(),
        None,
        "agent_stream",
        "agent",
        {"webhook": "not_asked"},
    ),
    (
        "5 override without connect target is ignored",
        snap(inbound_webhook_url="https://hook.example.com", agents=(SIP,)),
        call(),
        WebhookResult(status="answered", agent=NO_CONNECT),
        "agent_sip",
        "agent",
        {"agent_id": "ag_sip"},
    ),
    (
        "6 stream",
        snap(agents=(STREAM,)),
        call(),
        None,
        "agent_stream",
        "agent",
        {"agent_id": "ag_stream", "agent_version": 3, "stream_url": "wss://agents.example.com/s"},
    ),
    (
        "6 sip",
        snap(agents=(SIP,)),
        call(),
        None,
        "agent_sip",
        "agent",
        {"sip_uri": "sip:agent@sip.example.com", "agent_version": 1},
    ),
    (
        "6 unconnectable agent skipped",
        snap(agents=(NO_CONNECT, SIP)),
        call(),
        None,
        "agent_sip",
        "agent",
        {"agent_id": "ag_sip"},
    ),
    (
        "6 webhook result ignored without webhook url",
        snap(agents=(SIP,)),
        call(),
        REJECTED,
        "agent_sip",
        "agent",
        {"webhook": "not_configured"},
    ),
    (
        "7 fallback number",
        snap(fallback_number="+14155550177"),
        call(),
        None,
        "fallback_number",
        "no_agent",
        {"dial_number": "+14155550177"},
    ),
    (
        "7 fallback sip",
        snap(fallback_sip_uri="sip:desk@pbx.example.com"),
        call(),
        None,
        "fallback_sip",
        "no_agent",
        {"sip_uri": "sip:desk@pbx.example.com"},
    ),
    (
        "7 only unconnectable agents: fallback",
        snap(agents=(NO_CONNECT,), fallback_number="+14155550177"),
        call(),
        None,
        "fallback_number",
        "no_agent",
        {},
    ),
    ("7 nothing: not in service", snap(), call(), None, "not_in_service", "no_agent", {}),
]


@pytest.mark.parametrize(
    ("route", "the_call", "result", "outcome", "reason", "checks"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decision_table(
    route: RouteSnapshot | None,
    the_call: CallInfo,
    result: WebhookResult | None,
    outcome: str,
    reason: str,
    checks: dict[str, Any],
) -> None:
    decision = decide(route, the_call, result)
    assert (decision.outcome, decision.reason) == (outcome, reason)
    for name, expected in checks.items():
        assert getattr(decision, name) == expected, name
    assert decision.outcome in OUTCOMES
    assert decision.action  # every outcome maps to a carrier action
    assert decide(route, the_call, result) == decision  # pure: same inputs, same answer


def test_every_outcome_is_covered_by_the_table() -> None:
    seen = {decide(route, c, r).outcome for _, route, c, r, *_ in CASES}
    assert seen == set(OUTCOMES)


def test_stream_parameters_name_agent_version_call_and_number() -> None:
    decision = decide(snap(agents=(STREAM,)), call(call_id="CAabc"))
    params = dict(decision.parameters)
    assert params["agent_id"] == "ag_stream"
    assert params["agent_version"] == "3"
    assert params["call_id"] == "CAabc"
    assert params["phone_number_id"] == "num_1"
    assert params["from"] == CALLER_US and params["to"] == NUMBER
    with_vars = decide(snap(agents=(STREAM,), inbound_webhook_url="https://h.example.com"), call(), ANSWERED)
    assert dict(with_vars.parameters)["dynamic_variables"] == '{"name":"Ada"}'
    assert dict(with_vars.parameters)["metadata"] == '{"k":1}'


def test_needs_webhook_only_when_step_five_is_reached() -> None:
    hook = "https://hook.example.com"
    assert needs_webhook(snap(inbound_webhook_url=hook), call())
    assert not needs_webhook(snap(), call())
    assert not needs_webhook(None, call())
    assert not needs_webhook(snap(inbound_webhook_url=hook, status="released"), call())
    assert not needs_webhook(snap(inbound_webhook_url=hook, allowed_inbound_countries=("GB",)), call())
    assert not needs_webhook(
        snap(inbound_webhook_url=hook, outbound=True, callback_forwarding_number="+14155550199"), call()
    )
    assert not needs_webhook(snap(inbound_webhook_url=hook, call_handler=LAML), call())
    assert needs_webhook(snap(inbound_webhook_url=hook, call_handler=LAML), call(carrier="vonage"))


def test_as_dict_is_the_neutral_json() -> None:
    out = decide(snap(agents=(SIP,)), call()).as_dict()
    assert out["outcome"] == "agent_sip" and out["action"] == "dial_sip"
    assert out["sip_uri"] == "sip:agent@sip.example.com"
    assert out["phone_number_id"] == "num_1" and out["to"] == NUMBER and out["from"] == CALLER_US
    assert out["parameters"]["agent_id"] == "ag_sip"
    unknown = decide(None, call()).as_dict()
    assert unknown["outcome"] == "not_in_service" and unknown["phone_number_id"] is None
    assert "agent_id" not in unknown


# -- Weighted pick -----------------------------------------------------------------------------


def _agents(weights: list[float]) -> tuple[AgentTarget, ...]:
    return tuple(
        AgentTarget(f"ag_{i}", 1, w, stream_url=f"wss://a{i}.example.com") for i, w in enumerate(weights)
    )


weights_strategy = st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=8).map(
    lambda xs: [x / sum(xs) for x in xs]
)


@settings(max_examples=200, deadline=None)
@given(weights=weights_strategy, call_id=st.text(min_size=0, max_size=40), number_id=st.text(max_size=20))
def test_pick_is_deterministic_and_from_the_list(weights: list[float], call_id: str, number_id: str) -> None:
    agents = _agents(weights)
    first = pick_agent(agents, call_id, number_id)
    assert first is not None and first in agents
    assert all(pick_agent(agents, call_id, number_id) == first for _ in range(3))


@settings(max_examples=100, deadline=None)
@given(weights=weights_strategy, call_id=st.text(max_size=40))
def test_zero_weight_and_unconnectable_agents_are_never_picked(weights: list[float], call_id: str) -> None:
    agents = (
        *_agents(weights),
        AgentTarget("zero", 1, 0.0, stream_url="wss://z.example.com"),
        AgentTarget("nowhere", 1, 1.0),
    )
    chosen = pick_agent(agents, call_id, "num")
    assert chosen is not None and chosen.agent_id not in ("zero", "nowhere")


def test_pick_follows_the_weights() -> None:
    agents = _agents([0.8, 0.2])
    counts = Counter(pick_agent(agents, f"CA{i}", "num_1").agent_id for i in range(4000))  # type: ignore[union-attr]
    assert 0.75 < counts["ag_0"] / 4000 < 0.85


def test_pick_with_no_usable_agent() -> None:
    assert pick_agent((), "CA1", "n") is None
    assert pick_agent((NO_CONNECT,), "CA1", "n") is None


statuses = st.sampled_from(["active", "pending", "releasing", "released", "failed"])
countries = st.one_of(st.none(), st.lists(st.sampled_from(["US", "GB", "CA", "DE"]), min_size=1, max_size=3))
handlers = st.sampled_from([None, LAML, CallHandlerView(type="agents")])
results = st.sampled_from([None, ANSWERED, ANSWERED_NO_OVERRIDE, REJECTED, FAILED])


@settings(max_examples=400, deadline=None)
@given(
    status=statuses,
    allowed=countries,
    outbound=st.booleans(),
    forwarding=st.sampled_from([None, "+14155550199"]),
    handler=handlers,
    hook=st.sampled_from([None, "https://hook.example.com"]),
    agents=st.sampled_from([(), (STREAM,), (SIP,), (NO_CONNECT,), (STREAM, SIP)]),
    fallback_number=st.sampled_from([None, "+14155550177"]),
    fallback_sip=st.sampled_from([None, "sip:desk@pbx.example.com"]),
    caller=st.sampled_from([CALLER_US, CALLER_GB, "anonymous", None]),
    carrier=st.sampled_from(["twilio", "signalwire", "telnyx", "vonage", "json"]),
    result=results,
)
def test_order_holds_for_any_configuration(
    status: str,
    allowed: list[str] | None,
    outbound: bool,
    forwarding: str | None,
    handler: CallHandlerView | None,
    hook: str | None,
    agents: tuple[AgentTarget, ...],
    fallback_number: str | None,
    fallback_sip: str | None,
    caller: str | None,
    carrier: str,
    result: WebhookResult | None,
) -> None:
    """A reference implementation of the issue's order, written independently, agrees with decide()."""
    route = snap(
        status=status,
        allowed_inbound_countries=tuple(allowed) if allowed else None,
        outbound=outbound,
        callback_forwarding_number=forwarding,
        call_handler=handler,
        inbound_webhook_url=hook,
        agents=agents,
        fallback_number=fallback_number,
        fallback_sip_uri=fallback_sip,
    )
    the_call = call(caller, carrier=carrier)
    decision = decide(route, the_call, result)
    caller_country = {CALLER_US: "US", CALLER_GB: "GB"}.get(caller or "")

    if status != "active":
        expected = "not_in_service"
    elif allowed and caller_country not in allowed:
        expected = "rejected"
    elif outbound and forwarding:
        expected = "forwarded"
    elif handler is LAML and carrier != "vonage":
        expected = "redirected"
    elif hook and result is REJECTED:
        expected = "rejected"
    elif hook and result is ANSWERED:
        expected = "agent_stream"
    elif any(a.connectable for a in agents):
        expected = "agent_stream" if agents[0].stream_url else "agent_sip"
        if len(agents) == 2:
            expected = decision.outcome if decision.outcome in ("agent_stream", "agent_sip") else "?"
    elif fallback_number:
        expected = "fallback_number"
    elif fallback_sip:
        expected = "fallback_sip"
    else:
        expected = "not_in_service"
    assert decision.outcome == expected
    assert dataclasses.replace(decision) == decision


def test_the_callers_country_is_read_when_asked() -> None:
    call = CallInfo.parse(to="+14155550100", caller="+442079460000", call_id="c1", carrier="twilio")
    assert call.caller_country is None and call.country() == "GB"
    given = CallInfo.parse(
        to="+14155550100", caller="+442079460000", call_id="c1", carrier="twilio", caller_country="FR"
    )
    assert given.country() == "GB"  # the number says where the caller is; FromCountry is a parse hint


# Numbers of every shape a trace tells apart; the fallback SIP URIs hold escapes (quotes, a
# backslash, a newline, non-ASCII) and the stand-in routing.recording writes for the number.
shaped_routes = st.builds(
    snap,
    status=statuses,
    allowed_inbound_countries=countries.map(lambda allowed: tuple(allowed) if allowed else None),
    call_handler=handlers,
    inbound_webhook_url=st.sampled_from([None, "https://hook.example.com"]),
    agents=st.sampled_from([(), (STREAM,), (SIP,), (NO_CONNECT,), (STREAM, SIP)]),
    fallback_number=st.sampled_from([None, "+14155550177"]),
    fallback_sip_uri=st.sampled_from(
        [None, 'sip:"desk"\\\n\u00e9\U0001f600@pbx.example.com', "sip:\u2063e164\u2063@pbx.example.com"]
    ),
)
callers = st.sampled_from([CALLER_US, CALLER_GB, "anonymous", None])


@settings(max_examples=300, deadline=None)
@given(
    route=shaped_routes,
    caller=callers,
    to=st.text(max_size=12),
    result=results,
    webhook_ms=st.one_of(st.none(), st.floats(min_value=0, max_value=1e5)),
)
def test_the_stored_trace_is_the_trace_encoded(
    route: RouteSnapshot, caller: str | None, to: str, result: WebhookResult | None, webhook_ms: float | None
) -> None:
    """trace_text (what a call record stores, written without dicts) is json.dumps of trace
    (what ?explain=true answers), byte for byte, escapes included, for a number or for none."""
    the_call = call(caller)
    for target in (route, None):
        the_call = the_call._replace(to=to) if target is None else the_call
        decision = decide(target, the_call, result)
        expected = json.dumps(trace(target, the_call, result, decision, webhook_ms), separators=(",", ":"))
        assert trace_text(target, the_call, result, decision, webhook_ms) == expected


@settings(max_examples=300, deadline=None)
@given(
    route=shaped_routes,
    caller=callers,
    numbers=st.lists(st.sampled_from([NUMBER, "+14155550101", "+442079460001", 'sip:"x"\u00e9']), min_size=1),
)
@example(  # the stand-in in a tenant's text: each number's trace written for it, none shared
    route=snap(fallback_sip_uri="sip:\u2063e164\u2063@pbx.example.com"),
    caller=CALLER_US,
    numbers=[NUMBER, "+14155550101"],
)
def test_a_shared_trace_is_each_calls_own(
    route: RouteSnapshot, caller: str | None, numbers: list[str]
) -> None:
    """A call record's trace comes from text shared by every number of one shape, with the
    number put in (routing.recording.trace_of): for each number, in any order, hit or miss, it
    is byte for byte the trace written for that call alone, escapes included, even where a
    tenant's own text holds the stand-in for the number."""
    for e164 in numbers:
        number = route._replace(e164=e164, number_id=f"num_{e164}")
        the_call = call(caller)._replace(to=e164)
        decision = decide(number, the_call, None)
        for target in (number, None):
            expected = trace_text(target, the_call, None, decision)
            assert trace_of(target, the_call, None, decision, None) == expected


def test_the_agent_decision_and_the_call_are_built_field_by_field() -> None:
    """``decide``'s agent path and ``CallInfo.parse`` pass their fields by position (keywords
    cost a dict a call): every field lands where its name says, as the keyword forms would."""
    parsed = CallInfo.parse(
        to=NUMBER, caller="+1 212 555 0123", call_id="CA9", carrier="telnyx", fallback=True
    )
    assert parsed == CallInfo(
        to=NUMBER,
        caller=CALLER_US,
        call_id="CA9",
        carrier="telnyx",
        caller_country=None,
        raw_caller="+1 212 555 0123",
        fallback=True,
    )
    for agent, result in ((SIP, None), (STREAM, ANSWERED_NO_OVERRIDE)):
        routed = snap(language="en-GB", agents=(agent,), inbound_webhook_url="https://h" if result else None)
        decision = decide(routed, parsed, result)
        dynamic = dict(result.dynamic_variables) if result else {}
        expected = {
            "outcome": "agent_stream" if agent.stream_url else "agent_sip",
            "reason": "agent",
            "number_id": "num_1",
            "org_id": "org_1",
            "to": NUMBER,
            "caller": CALLER_US,
            "call_id": "CA9",
            "message": None,
            "language": "en-GB",
            "dial_number": None,
            "sip_uri": agent.sip_uri,
            "redirect_url": None,
            "redirect_method": "POST",
            "stream_url": agent.stream_url,
            "agent_id": agent.agent_id,
            "agent_version": agent.version,
            "dynamic_variables": dynamic,
            "metadata": {},
            "webhook": "answered" if result else "not_configured",
        }
        assert {
            f.name: getattr(decision, f.name) for f in dataclasses.fields(decision) if f.name != "parameters"
        } == expected
