"""Phone-number Create/Read/Update schemas.

``PhoneNumberConfig`` is every setting a number carries. Buy, import and update all take it;
update is partial (an absent field is unchanged, ``null`` clears it). Every phone number in a
request is normalised to E.164 here, so nothing downstream ever sees another form.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal, get_args

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from numberplane.agents.schemas import VoiceSettings
from numberplane.kernel import e164
from numberplane.kernel.e164 import NumberType
from numberplane.kernel.schemas import HttpUrl, Language, Metadata, Model, SipUri, max_json

MAX_AGENTS_PER_DIRECTION = 20
EXTRAS_BYTES = 32 * 1024  # every dialect's settings on one number, together
IMPORT_DEFAULTS_BYTES = 64 * 1024
Extras = Annotated[dict[str, dict[str, Any]], max_json(EXTRAS_BYTES)]
ShortText = Annotated[str, Field(max_length=255)]
MAX_IMPORT_ROWS = 100_000
DIRECTIONS = ("inbound", "outbound", "inbound_sms", "outbound_sms")
STATUSES = ("pending", "active", "releasing", "released", "failed")


def _e164(value: str) -> str:
    try:
        return e164.to_e164(value)
    except e164.InvalidPhoneNumber as exc:
        raise ValueError(exc.reason) from exc


def _country(value: str) -> str:
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code with phone numbering")
    return code


E164 = Annotated[str, AfterValidator(_e164)]
CountryCode = Annotated[str, AfterValidator(_country)]
Method = Annotated[Literal["GET", "POST"], BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)]
Transport = Annotated[
    Literal["udp", "tcp", "tls"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)
]


class AgentBinding(Model):
    """An agent answering (or placing) this number's calls. ``version`` None follows the latest."""

    agent_id: str = Field(min_length=1, max_length=64)
    version: int | None = Field(default=None, ge=1)
    weight: float | None = Field(default=None, gt=0, le=1)


def _check_bindings(value: list[AgentBinding] | None) -> list[AgentBinding] | None:
    if value is None:
        return None
    if len(value) > MAX_AGENTS_PER_DIRECTION:
        raise ValueError(f"at most {MAX_AGENTS_PER_DIRECTION} agents")
    if not value:
        return value
    weights = [b.weight for b in value]
    if all(w is None for w in weights):
        share = 1.0 / len(value)
        return [b.model_copy(update={"weight": share}) for b in value]
    if any(w is None for w in weights):
        raise ValueError("give every agent a weight, or none (they then share equally)")
    total = math.fsum(w for w in weights if w is not None)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (they sum to {total:g})")
    seen: set[tuple[str, int | None]] = set()
    for b in value:
        key = (b.agent_id, b.version)
        if key in seen:
            raise ValueError(f"agent {b.agent_id} (version {b.version or 'latest'}) is listed twice")
        seen.add(key)
    return value


AgentBindings = Annotated[list[AgentBinding] | None, AfterValidator(_check_bindings)]


class Capabilities(Model):
    voice: bool = True
    sms: bool = False
    mms: bool = False
    fax: bool = False


class Fallback(Model):
    """Where a call goes when no agent can take it: a phone number or a SIP URI (exactly one)."""

    number: E164 | None = None
    sip_uri: SipUri | None = None

    @model_validator(mode="after")
    def _one(self) -> Fallback:
        if bool(self.number) == bool(self.sip_uri):
            raise ValueError("set exactly one of number or sip_uri")
        return self


# What runs a call besides the number's own agents: the customer's TwiML/LaML URL, or a
# SignalWire resource stored so a SignalWire client reads back what it wrote.
ExternalCallHandler = Literal[
    "laml_webhooks",
    "laml_application",
    "relay_context",
    "relay_topic",
    "relay_script",
    "relay_application",
    "relay_connector",
    "relay_sip_endpoint",
    "relay_verto_endpoint",
    "dialogflow",
    "video_room",
    "ai_agent",
    "call_flow",
]
CallHandlerType = Literal["agents", ExternalCallHandler]
MessageHandlerType = Literal[
    "relay_context", "relay_topic", "relay_application", "laml_webhooks", "laml_application"
]
CALL_HANDLER_TYPES: tuple[str, ...] = get_args(CallHandlerType)
MESSAGE_HANDLER_TYPES: tuple[str, ...] = get_args(MessageHandlerType)


class CallHandler(Model):
    """What runs on an inbound call. ``agents`` (the default) routes to the number's agents;
    ``laml_webhooks`` hands the call to the customer's own URL. Other types are SignalWire's
    resources, stored so a SignalWire client reads back what it wrote."""

    type: CallHandlerType = "agents"
    receive_mode: Literal["voice", "fax"] = "voice"
    request_url: HttpUrl | None = None
    request_method: Method = "POST"
    fallback_url: HttpUrl | None = None
    fallback_method: Method = "POST"
    status_callback_url: HttpUrl | None = None
    status_callback_method: Method = "POST"
    laml_application_id: str | None = None
    dialogflow_agent_id: str | None = None
    relay_topic: str | None = None
    relay_topic_status_callback_url: HttpUrl | None = None
    relay_script_url: HttpUrl | None = None
    relay_context: str | None = None
    relay_context_status_callback_url: HttpUrl | None = None
    relay_application: str | None = None
    relay_connector_id: str | None = None
    sip_endpoint_id: str | None = None
    verto_resource: str | None = None
    video_room_id: str | None = None
    ai_agent_id: str | None = None
    flow_id: str | None = None
    flow_version: Literal["working_copy", "current_deployed"] | None = None

    @model_validator(mode="after")
    def _needs_url(self) -> CallHandler:
        if self.type == "laml_webhooks" and not self.request_url:
            raise ValueError("laml_webhooks needs request_url")
        if self.fallback_url and not self.request_url:
            raise ValueError("fallback_url needs request_url")
        return self


class MessageHandler(Model):
    type: MessageHandlerType
    request_url: HttpUrl | None = None
    request_method: Method = "POST"
    fallback_url: HttpUrl | None = None
    fallback_method: Method = "POST"
    laml_application_id: str | None = None
    relay_topic: str | None = None
    relay_context: str | None = None
    relay_application: str | None = None

    @model_validator(mode="after")
    def _needs_url(self) -> MessageHandler:
        if self.type == "laml_webhooks" and not self.request_url:
            raise ValueError("laml_webhooks needs request_url")
        return self


class SipHeader(Model):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9-]+$")
    value: str = Field(max_length=1000)


class SipConfig(Model):
    """A SIP leg: for outbound the trunk calls leave through (termination), for inbound where calls
    arrive from (origination). ``password`` is write-only: stored encrypted, never returned."""

    # pydantic cannot apply the model-wide text bound to SecretStr: every field here has its own.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_max_length=None)

    enabled: bool = True
    endpoint: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Transport | None = None
    username: str | None = Field(default=None, max_length=255)
    password: SecretStr | None = Field(default=None, max_length=255)
    from_domain: str | None = Field(default=None, max_length=255)
    secure_media: bool | None = None
    headers: list[SipHeader] | None = Field(default=None, max_length=50)
    codecs: list[ShortText] | None = Field(default=None, max_length=20)
    trunk_id: str | None = Field(default=None, max_length=100)
    dispatch_rule_id: str | None = Field(default=None, max_length=100)
    origination_uri: str | None = Field(default=None, max_length=255)
    allowed_addresses: list[Annotated[str, Field(max_length=255)]] | None = Field(
        default=None, max_length=100
    )


class PhoneNumberConfig(Model):
    name: str | None = Field(default=None, max_length=255)
    language: Language | None = None
    voice: VoiceSettings | None = None
    inbound_agents: AgentBindings = None
    outbound_agents: AgentBindings = None
    inbound_sms_agents: AgentBindings = None
    outbound_sms_agents: AgentBindings = None
    inbound_webhook_url: HttpUrl | None = None
    inbound_webhook_timeout_ms: int | None = Field(default=None, ge=200, le=30_000)
    inbound_webhook_attempts: int | None = Field(default=None, ge=1, le=5)
    inbound_sms_webhook_url: HttpUrl | None = None
    fallback: Fallback | None = None
    call_handler: CallHandler | None = None
    message_handler: MessageHandler | None = None
    sip_inbound: SipConfig | None = None
    sip_outbound: SipConfig | None = None
    capabilities: Capabilities | None = None
    outbound: bool | None = None
    verified_caller_id: E164 | None = None
    callback_forwarding_number: E164 | None = None
    allowed_inbound_countries: list[CountryCode] | None = Field(default=None, max_length=250)
    allowed_outbound_countries: list[CountryCode] | None = Field(default=None, max_length=250)
    emergency_address_id: str | None = Field(default=None, max_length=64)
    metadata: Metadata | None = None
    extras: Extras | None = Field(
        default=None, description="Per-dialect settings with no core meaning, keyed by dialect name."
    )


class PhoneNumberBuy(PhoneNumberConfig):
    """Buy an exact ``phone_number``, or the first available by ``area_code``/``country``/``number_type``."""

    phone_number: E164 | None = None
    area_code: str | None = Field(default=None, pattern=r"^\d{2,5}$")
    country: CountryCode = "US"
    number_type: Literal["local", "toll_free", "mobile"] = Field(default="local", alias="type")
    contains: str | None = Field(default=None, pattern=r"^[0-9]{1,10}$")
    carrier_account_id: str | None = None

    @field_validator("area_code", mode="before")
    @classmethod
    def _area_code_int(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PhoneNumberImportRow(PhoneNumberConfig):
    """A number the org already owns. With ``carrier_account_id`` it is verified at that carrier
    and its webhooks pointed at Numberplane; without, it arrives over a SIP trunk."""

    phone_number: str = Field(max_length=64)
    country: CountryCode | None = Field(default=None, description="Hint for numbers written nationally.")
    number_type: NumberType | None = Field(
        default=None, description="As the number's plan says when absent; otherwise one of these."
    )
    carrier_account_id: str | None = None
    carrier_number_id: str | None = Field(default=None, max_length=64)


class PhoneNumberImport(Model):
    """One request, up to 100,000 rows. Each row succeeds or fails on its own."""

    # Rows are judged one by one by the service, so even a malformed row fails alone.
    numbers: list[Any] = Field(min_length=1, max_length=MAX_IMPORT_ROWS)
    defaults: Annotated[dict[str, Any], max_json(IMPORT_DEFAULTS_BYTES)] | None = Field(
        default=None, description="Settings applied to every row unless the row sets them."
    )


class PhoneNumberUpdate(PhoneNumberConfig):
    pass


class ImportRowResult(BaseModel):
    index: int = Field(description="0-based position in this request's `numbers`")
    row: int = Field(
        default=0, description="1-based row number, as a person counts (the CSV's data row in the CLI)"
    )
    phone_number: str | None
    status: Literal["created", "unchanged", "failed"] = Field(
        description="unchanged: the org already holds this number, imported with exactly these "
        "settings (a retried import)"
    )
    id: str | None = None
    error: dict[str, str] | None = None


class ImportReport(BaseModel):
    total: int
    created: int
    unchanged: int = 0
    failed: int
    results: list[ImportRowResult]


class AgentBindingRead(BaseModel):
    agent_id: str
    version: int | None
    weight: float


class SipConfigRead(BaseModel):
    enabled: bool = True
    endpoint: str | None = None
    port: int | None = None
    transport: str | None = None
    username: str | None = None
    password_set: bool = False
    from_domain: str | None = None
    secure_media: bool | None = None
    headers: list[dict[str, str]] | None = None
    codecs: list[str] | None = None
    trunk_id: str | None = None
    dispatch_rule_id: str | None = None
    origination_uri: str | None = None
    allowed_addresses: list[str] | None = None


class PhoneNumberRead(BaseModel):
    id: str
    org_id: str
    phone_number: str
    phone_number_pretty: str
    country: str | None
    area_code: str | None
    number_type: str
    capabilities: dict[str, bool]
    status: Literal["pending", "active", "releasing", "released", "failed"]
    origin: Literal["purchased", "imported"]
    carrier: str
    carrier_account_id: str | None = None
    carrier_number_id: str | None = None
    name: str | None = None
    language: str | None = None
    voice: dict[str, Any] | None = None
    inbound_agents: list[AgentBindingRead] = Field(default_factory=list)
    outbound_agents: list[AgentBindingRead] = Field(default_factory=list)
    inbound_sms_agents: list[AgentBindingRead] = Field(default_factory=list)
    outbound_sms_agents: list[AgentBindingRead] = Field(default_factory=list)
    inbound_webhook_url: str | None = None
    inbound_webhook_timeout_ms: int | None = None
    inbound_webhook_attempts: int | None = None
    inbound_sms_webhook_url: str | None = None
    fallback: dict[str, Any] | None = None
    call_handler: dict[str, Any] | None = None
    message_handler: dict[str, Any] | None = None
    sip_inbound: SipConfigRead | None = None
    sip_outbound: SipConfigRead | None = None
    outbound: bool = False
    verified_caller_id: str | None = None
    callback_forwarding_number: str | None = None
    allowed_inbound_countries: list[str] | None = None
    allowed_outbound_countries: list[str] | None = None
    emergency_address_id: str | None = None
    emergency_status: str | None = None
    carrier_sync: dict[str, Any] | None = None
    next_billed_at: dt.datetime | None = None
    released_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_modification_timestamp: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    extras: dict[str, Any] = Field(default_factory=dict)
    order: dict[str, Any] | None = Field(
        default=None, description="For a purchase still in flight: the order's id and status."
    )


class NumberFilters(BaseModel):
    q: str | None = Field(default=None, description="Text in the name, or digits in the number")
    name: str | None = Field(default=None, description="Text in the name only")
    number: str | None = Field(default=None, description="Digits in the number only")
    agent_id: str | None = None
    status: str | None = None
    carrier: str | None = None
    area_code: str | None = None
    unassigned: bool | None = None


class AvailableNumberRead(BaseModel):
    """A number a carrier offers (search results)."""

    phone_number: str
    phone_number_pretty: str
    country: str
    number_type: str
    area_code: str | None = None
    locality: str | None = None
    region: str | None = None
    capabilities: dict[str, bool]
    monthly_cost: str | None = None
    currency: str | None = None
