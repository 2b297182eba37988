"""Agent Create/Read/Update schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, model_validator

from numberplane.kernel.schemas import (
    HttpUrl,
    Language,
    Metadata,
    Model,
    ReadModel,
    SipUri,
    WsUrl,
)


class VoiceSettings(Model):
    """A TTS voice and its tuning. ElevenLabs-style (stability, similarity, style) and SSML-style
    (pitch, rate) tuning both fit; a provider ignores what it does not use."""

    voice_id: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=50)
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    stability: float | None = Field(default=None, ge=0.0, le=1.0)
    similarity: float | None = Field(default=None, ge=0.0, le=1.0)
    style: float | None = Field(default=None, ge=0.0, le=1.0)
    pitch: float | None = Field(default=None, ge=-100.0, le=100.0)
    rate: float | None = Field(default=None, ge=-100.0, le=100.0)


class ActionConfig(Model):
    phone_number: str | None = Field(default=None, max_length=64)
    digits: str | None = Field(default=None, pattern=r"^[0-9*#wW]{1,64}$")


class AgentAction(Model):
    id: str | None = Field(default=None, max_length=64)
    type: Literal["end_conversation", "transfer_call", "send_dtmf"]
    config: ActionConfig = Field(default_factory=ActionConfig)

    @model_validator(mode="after")
    def _needs(self) -> AgentAction:
        if self.type == "transfer_call":
            from numberplane.kernel.e164 import InvalidPhoneNumber, to_e164

            if not self.config.phone_number:
                raise ValueError("transfer_call needs config.phone_number")
            try:
                self.config.phone_number = to_e164(self.config.phone_number)
            except InvalidPhoneNumber as exc:
                raise ValueError(f"config.phone_number {exc.reason}") from exc
        # send_dtmf without digits lets the agent choose them during the call (Vocode's action_dtmf).
        return self


EventSubscription = Literal[
    "event_message",
    "event_action",
    "event_phone_call_connected",
    "event_phone_call_ended",
    "event_phone_call_did_not_connect",
    "event_transcript",
    "event_recording",
    "event_human_detection",
]


class AgentWebhook(Model):
    url: HttpUrl
    method: Literal["GET", "POST"] = "POST"
    subscriptions: list[EventSubscription] = Field(default_factory=list)


class AgentConnect(Model):
    """Where the agent's calls are handed over: a media stream or a SIP URI (exactly one)."""

    stream_url: WsUrl | None = None
    sip_uri: SipUri | None = None

    @model_validator(mode="after")
    def _one(self) -> AgentConnect:
        if bool(self.stream_url) == bool(self.sip_uri):
            raise ValueError("set exactly one of stream_url or sip_uri")
        return self


class AgentFields(Model):
    language: Language | None = None
    voice: VoiceSettings | None = None
    prompt: str | None = Field(default=None, max_length=100_000)
    initial_message: str | None = Field(default=None, max_length=5_000)
    actions: list[AgentAction] | None = Field(default=None, max_length=50)
    webhook: AgentWebhook | None = None
    connect: AgentConnect | None = None
    metadata: Metadata | None = None


class AgentCreate(AgentFields):
    name: str = Field(min_length=1, max_length=200)


class AgentUpdate(AgentFields):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class AgentRead(ReadModel):
    id: str
    org_id: str
    name: str
    version: int
    language: str | None = None
    voice: dict[str, Any] | None = None
    prompt: str | None = None
    initial_message: str | None = None
    actions: list[dict[str, Any]] = Field(default_factory=list)
    webhook: dict[str, Any] | None = None
    connect: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime
    updated_at: dt.datetime


class AgentVersionRead(ReadModel):
    agent_id: str
    version: int
    config: dict[str, Any]
    created_at: dt.datetime


CONFIG_FIELDS = (
    "language",
    "voice",
    "prompt",
    "initial_message",
    "actions",
    "webhook",
    "connect",
    "metadata",
)
