"""The routing decision: a pure function of a number's snapshot, the call and (when the number
has an inbound webhook) what that webhook answered.

Order (first match wins):

1. unknown, or not active (released, failed, pending, releasing): "not in service", hang up;
2. caller's country outside ``allowed_inbound_countries``: reject;
3. outbound number with ``callback_forwarding_number``: forward the call there;
4. call handler ``laml_webhooks`` (on carriers that speak TwiML-like XML, and for the neutral
   JSON): redirect to ``request_url`` (``fallback_url`` when the carrier is asking again
   because the first attempt failed);
5. ``inbound_webhook_url``: apply its answer (reject; override agent/version; dynamic
   variables and metadata); a failed webhook changes nothing and routing carries on;
6. inbound agents: weighted pick, deterministic per call id, then ``<Connect><Stream>`` or
   ``<Dial><Sip>``;
7. no agent: the fallback number or SIP URI; else "not in service".

Nothing here does I/O. ``needs_webhook`` tells the caller whether step 5 will be reached, so the
webhook is asked only when its answer can matter; the answer is passed in as ``WebhookResult``.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from numberplane.kernel.e164 import country_of, normalize_address
from numberplane.routing.snapshot import AgentTarget, RouteSnapshot

NOT_IN_SERVICE_MESSAGE = "The number you have called is not in service. Goodbye."

# Carriers whose answer language can carry a <Redirect> to the customer's own LaML/TwiML URL.
LAML_CAPABLE = frozenset({"twilio", "sandbox", "signalwire", "telnyx", "json"})

ACTIONS = {
    "not_in_service": "say_hangup",
    "rejected": "reject",
    "forwarded": "dial_number",
    "fallback_number": "dial_number",
    "redirected": "redirect",
    "agent_stream": "stream",
    "agent_sip": "dial_sip",
    "fallback_sip": "dial_sip",
}
OUTCOMES = (
    "not_in_service",
    "rejected",
    "forwarded",
    "redirected",
    "agent_stream",
    "agent_sip",
    "fallback_number",
    "fallback_sip",
)


class CallInfo(NamedTuple):
    """The call as the carrier described it, with addresses already in E.164 (or None).

    A NamedTuple, not a frozen dataclass: made once per call on the data plane's path, where a
    frozen dataclass's ``__init__`` (a guarded ``setattr`` per field) cost 1.1 us against 0.5."""

    to: str | None
    caller: str | None
    call_id: str
    carrier: str = "json"
    caller_country: str | None = None
    raw_caller: str | None = None
    fallback: bool = False

    def country(self) -> str | None:
        """The caller's country: given, or read from the caller's number when first needed (only
        a number with ``allowed_inbound_countries`` asks; the region lookup is the dear part of
        reading a number)."""
        return self.caller_country or country_of(self.caller)

    @classmethod
    def parse(
        cls,
        *,
        to: str | None,
        caller: str | None,
        call_id: str | None,
        carrier: str,
        to_country: str | None = None,
        caller_country: str | None = None,
        fallback: bool = False,
    ) -> CallInfo:
        """Normalise whatever the carrier sent (+E.164, digits, national, sip:/tel: URIs)."""
        to_e164, caller_e164, country = _addresses(to, caller, to_country, caller_country)
        # Positional, in the fields' order: keywords would be packed into a dict for ``__new__``.
        return cls(
            to_e164,  # to
            caller_e164,  # caller
            (call_id or "")[:128],  # call_id
            carrier,
            country,  # caller_country
            (caller or None) and caller[:128],  # raw_caller
            fallback,
        )


_ADDRESSES: OrderedDict[tuple[str | None, ...], tuple[str | None, str | None, str | None]] = OrderedDict()
_ADDRESSES_MAX = 65_536


def _addresses(
    to: str | None, caller: str | None, to_country: str | None, caller_country: str | None
) -> tuple[str | None, str | None, str | None]:
    """(to, caller, caller's country), normalised; memoised (its entries are tuples of strings,
    which the garbage collector does not track), oldest dropped first: an OrderedDict, whose first
    key costs nothing to find (a plain dict's scans past every key deleted before it)."""
    key = (to, caller, to_country, caller_country)
    hit = _ADDRESSES.get(key)
    if hit is not None:
        return hit
    to_e164 = normalize_address(to, country_hint=_hint(to_country))
    caller_e164 = normalize_address(caller, country_hint=_hint(caller_country or to_country))
    value = (to_e164, caller_e164, None)  # the country: ``CallInfo.country``, when a number asks
    if len(_ADDRESSES) >= _ADDRESSES_MAX:
        _ADDRESSES.pop(next(iter(_ADDRESSES)), None)
    _ADDRESSES[key] = value
    return value


def _hint(country: str | None) -> str | None:
    if country and len(country) == 2 and country.isalpha():
        return country.upper()
    return None


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What the number's inbound webhook said. ``status``: answered | failed | rejected.

    ``agent`` is the override already resolved to a connectable target (the webhook step does
    the lookup); None means "no override", and routing uses the number's own agents.
    """

    status: str
    agent: AgentTarget | None = None
    dynamic_variables: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None

    @classmethod
    def failed(cls, error: str, attempts: int = 0) -> WebhookResult:
        return cls(status="failed", error=error, attempts=attempts)


@dataclass(slots=True)
class Decision:
    outcome: str
    reason: str
    number_id: str | None = None
    org_id: str | None = None
    to: str | None = None
    caller: str | None = None
    call_id: str | None = None
    message: str | None = None
    language: str | None = None
    dial_number: str | None = None
    sip_uri: str | None = None
    redirect_url: str | None = None
    redirect_method: str = "POST"
    stream_url: str | None = None
    agent_id: str | None = None
    agent_version: int | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    dynamic_variables: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook: str = "not_configured"

    @property
    def action(self) -> str:
        """What the carrier is told: say_hangup | reject | dial_number | dial_sip | redirect | stream."""
        return ACTIONS[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        """The carrier-neutral JSON form (``GET /v1/route``)."""
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "action": self.action,
            "reason": self.reason,
            "phone_number_id": self.number_id,
            "to": self.to,
            "from": self.caller,
            "call_id": self.call_id,
            "webhook": self.webhook,
        }
        optional = {
            "message": self.message,
            "language": self.language,
            "dial_number": self.dial_number,
            "sip_uri": self.sip_uri,
            "redirect_url": self.redirect_url,
            "redirect_method": self.redirect_method if self.redirect_url else None,
            "stream_url": self.stream_url,
            "agent_id": self.agent_id,
            "agent_version": self.agent_version,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        if self.agent_id is not None:
            out["dynamic_variables"] = dict(self.dynamic_variables)
            out["metadata"] = dict(self.metadata)
        return out


def pick_agent(agents: Sequence[AgentTarget], call_id: str, number_id: str) -> AgentTarget | None:
    """Weighted choice among the connectable agents, the same for the same call id every time."""
    if len(agents) == 1:  # most numbers: nothing to choose between
        only = agents[0]
        return only if only.connectable and only.weight > 0 else None
    usable = [a for a in agents if a.connectable and a.weight > 0]
    if not usable:
        return None
    if len(usable) == 1:
        return usable[0]
    total = sum(a.weight for a in usable)
    digest = hashlib.sha256(f"{number_id}\x00{call_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2.0**64 * total
    running = 0.0
    for agent in usable:
        running += agent.weight
        if point < running:
            return agent
    return usable[-1]


def _base(route: RouteSnapshot | None, call: CallInfo, outcome: str, reason: str, **kw: Any) -> Decision:
    return Decision(
        outcome=outcome,
        reason=reason,
        number_id=route.number_id if route else None,
        org_id=route.org_id if route else None,
        to=call.to,
        caller=call.caller,
        call_id=call.call_id or None,
        language=route.language if route else None,
        **kw,
    )


def _not_in_service(route: RouteSnapshot | None, call: CallInfo, reason: str, **kw: Any) -> Decision:
    return _base(route, call, "not_in_service", reason, message=NOT_IN_SERVICE_MESSAGE, **kw)


def _pre_webhook(route: RouteSnapshot | None, call: CallInfo) -> Decision | None:
    """Steps 1-4: a decision that needs no webhook, or None to go on."""
    if route is None:
        return _not_in_service(None, call, "unknown_number")
    if route.status != "active":
        return _not_in_service(route, call, f"number_{route.status}")
    allowed = route.allowed_inbound_countries
    if allowed and call.country() not in allowed:
        return _base(route, call, "rejected", "caller_country_not_allowed")
    if route.outbound and route.callback_forwarding_number:
        return _base(
            route, call, "forwarded", "callback_forwarding", dial_number=route.callback_forwarding_number
        )
    handler = route.call_handler
    if handler and handler.type == "laml_webhooks" and handler.request_url and call.carrier in LAML_CAPABLE:
        if call.fallback and handler.fallback_url:
            return _base(
                route,
                call,
                "redirected",
                "laml_webhooks_fallback",
                redirect_url=handler.fallback_url,
                redirect_method=handler.fallback_method,
            )
        return _base(
            route,
            call,
            "redirected",
            "laml_webhooks",
            redirect_url=handler.request_url,
            redirect_method=handler.request_method,
        )
    return None


def needs_webhook(route: RouteSnapshot | None, call: CallInfo) -> bool:
    """Whether ``decide`` reaches step 5 for this call (so the webhook's answer matters)."""
    return bool(route and route.inbound_webhook_url and _pre_webhook(route, call) is None)


def stream_parameters(
    route: RouteSnapshot,
    call: CallInfo,
    agent: AgentTarget,
    dynamic: dict[str, str],
    metadata: dict[str, Any],
) -> tuple[tuple[str, str], ...]:
    params: tuple[tuple[str, str], ...] = (
        ("agent_id", agent.agent_id),
        ("agent_version", "" if agent.version is None else str(agent.version)),
        ("call_id", call.call_id),
        ("phone_number_id", route.number_id),
        ("to", call.to or ""),
        ("from", call.caller or call.raw_caller or ""),
    )
    if dynamic:
        params += (("dynamic_variables", json.dumps(dynamic, separators=(",", ":"), sort_keys=True)),)
    if metadata:
        params += (("metadata", json.dumps(metadata, separators=(",", ":"), sort_keys=True, default=str)),)
    return params


def decide(
    route: RouteSnapshot | None, call: CallInfo, webhook_result: WebhookResult | None = None
) -> Decision:
    """What to do with ``call`` to the number described by ``route``. Pure; never raises."""
    early = _pre_webhook(route, call)
    if early is not None:
        return early
    assert route is not None
    webhook = "not_configured"
    agent: AgentTarget | None = None
    dynamic: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    if route.inbound_webhook_url:
        if webhook_result is None:
            webhook = "not_asked"
        elif webhook_result.status == "rejected":
            return _base(route, call, "rejected", "webhook_rejected", webhook="rejected")
        elif webhook_result.status == "answered":
            webhook = "answered"
            agent = (
                webhook_result.agent if webhook_result.agent and webhook_result.agent.connectable else None
            )
            dynamic = dict(webhook_result.dynamic_variables)
            metadata = dict(webhook_result.metadata)
        else:
            webhook = "failed"
    if agent is None:
        agent = pick_agent(route.agents, call.call_id, route.number_id)
    if agent is not None:  # nearly every call: the Decision made here directly, not through _base
        # Positional, every field in order: keywords would be packed into a dict for __init__.
        return Decision(
            "agent_stream" if agent.stream_url else "agent_sip",  # outcome
            "agent",  # reason
            route.number_id,
            route.org_id,
            call.to,
            call.caller,
            call.call_id or None,
            None,  # message
            route.language,
            None,  # dial_number
            None if agent.stream_url else agent.sip_uri,  # sip_uri
            None,  # redirect_url
            "POST",  # redirect_method
            agent.stream_url or None,  # stream_url
            agent.agent_id,
            agent.version,  # agent_version
            stream_parameters(route, call, agent, dynamic, metadata),  # parameters
            dynamic,  # dynamic_variables
            metadata,
            webhook,
        )
    if route.fallback_number:
        return _base(
            route, call, "fallback_number", "no_agent", dial_number=route.fallback_number, webhook=webhook
        )
    if route.fallback_sip_uri:
        return _base(route, call, "fallback_sip", "no_agent", sip_uri=route.fallback_sip_uri, webhook=webhook)
    return _not_in_service(route, call, "no_agent", webhook=webhook)
