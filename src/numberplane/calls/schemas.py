"""The Call API object, its list filters, a number's call stats and a test call's request."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STATUSES = ("ringing", "in_progress", "completed", "busy", "no_answer", "failed", "canceled")
CARRIERS = ("twilio", "sandbox", "signalwire", "telnyx", "vonage", "api")
# routing.decide.OUTCOMES (routing sits above calls; a test holds the two equal).
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
CallStatus = Literal["ringing", "in_progress", "completed", "busy", "no_answer", "failed", "canceled"]


class TraceStep(BaseModel):
    """One step of the routing decision, in the order ``routing.decide`` takes them."""

    step: str = Field(description="number, country, forwarding, call_handler, webhook, agent, fallback")
    result: str
    detail: str


class CallWebhook(BaseModel):
    """The number's inbound webhook for this call: whether it was asked, what came back, how fast."""

    asked: bool
    status: str = Field(description="not_configured, not_asked, answered, failed, rejected")
    latency_ms: float | None = None
    overrode_agent: bool = False
    error: str | None = None


class CallRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    object: Literal["call"] = "call"
    phone_number_id: str | None
    phone_number: str | None
    from_: str | None = Field(alias="from", serialization_alias="from")
    direction: str
    carrier: str
    carrier_call_id: str
    status: str
    outcome: str | None
    reason: str | None
    agent_id: str | None
    agent_version: int | None
    webhook: CallWebhook | None
    decision_ms: float | None
    started_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration_s: int | None
    sip_code: int | None
    trace: list[TraceStep]


class CallFilters(BaseModel):
    phone_number: str | None = None
    phone_number_id: str | None = None
    agent_id: str | None = None
    status: str | None = None
    outcome: str | None = None
    carrier: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


class NumberStats(BaseModel):
    object: Literal["phone_number_stats"] = "phone_number_stats"
    phone_number_id: str
    phone_number: str
    window: str
    since: dt.datetime
    until: dt.datetime
    calls: int
    answered: int
    answer_rate: float | None = Field(description="answered / calls; null with no calls")
    avg_duration_s: float | None
    short_calls: int = Field(description="Answered calls that lasted under 10 s")
    fallbacks: int
    rejected: int
    decision_ms_p50: float | None
    decision_ms_p99: float | None


class DayCount(BaseModel):
    """Calls to a number on one UTC day (a bar of the console's chart)."""

    day: dt.date
    calls: int


class RouteStatus(BaseModel):
    """``POST /v1/route/status``: a SIP platform reporting a call's progress."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=128)
    status: CallStatus
    duration_s: int | None = Field(default=None, ge=0, le=7 * 86400)
    sip_code: int | None = Field(default=None, ge=100, le=699)


class PlaceTestCall(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(min_length=1, max_length=64, description="One of the org's numbers, any format")
    from_: str = Field(
        default="+12025550123", alias="from", min_length=1, max_length=64, description="The caller (E.164)"
    )
    duration_s: int = Field(default=30, ge=0, le=14_400)
    answer: bool = True


class CarrierAnswer(BaseModel):
    status: int
    content_type: str | None
    body: str


class PlacedTestCall(CallRead):
    answer: CarrierAnswer


def webhook_view(raw: dict[str, Any] | None) -> CallWebhook | None:
    return CallWebhook.model_validate(raw) if raw else None
