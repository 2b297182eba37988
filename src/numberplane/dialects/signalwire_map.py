"""SignalWire RELAY REST phone-number shapes and their translation (pure functions).

SignalWire flattens its handlers into ``call_*`` and ``message_*`` fields; the core keeps them
as ``call_handler`` and ``message_handler`` objects with the same names minus the prefix, so
``call_request_url`` here is ``call_handler.request_url`` in /v1. A number answered by its
agents (the core's ``agents`` handler) shows ``call_handler: null``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import (
    AvailableNumberRead,
    ExternalCallHandler,
    MessageHandlerType,
    PhoneNumberRead,
)

DIALECT = "signalwire"

# Request enums: the core's (SignalWire has no handler for the number's own agents).
CallHandlerName = ExternalCallHandler
MessageHandlerName = MessageHandlerType


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


HttpMethod = Annotated[Literal["GET", "POST"], BeforeValidator(_upper)]

# SignalWire field -> core CallHandler / MessageHandler field.
CALL_FIELDS = {
    "call_receive_mode": "receive_mode",
    "call_request_url": "request_url",
    "call_request_method": "request_method",
    "call_fallback_url": "fallback_url",
    "call_fallback_method": "fallback_method",
    "call_status_callback_url": "status_callback_url",
    "call_status_callback_method": "status_callback_method",
    "call_laml_application_id": "laml_application_id",
    "call_dialogflow_agent_id": "dialogflow_agent_id",
    "call_relay_topic": "relay_topic",
    "call_relay_topic_status_callback_url": "relay_topic_status_callback_url",
    "call_relay_script_url": "relay_script_url",
    "call_relay_context": "relay_context",
    "call_relay_context_status_callback_url": "relay_context_status_callback_url",
    "call_relay_application": "relay_application",
    "call_relay_connector_id": "relay_connector_id",
    "call_sip_endpoint_id": "sip_endpoint_id",
    "call_verto_resource": "verto_resource",
    "call_video_room_id": "video_room_id",
    "call_ai_agent_id": "ai_agent_id",
    "call_flow_id": "flow_id",
    "call_flow_version": "flow_version",
}
MESSAGE_FIELDS = {
    "message_request_url": "request_url",
    "message_request_method": "request_method",
    "message_fallback_url": "fallback_url",
    "message_fallback_method": "fallback_method",
    "message_laml_application_id": "laml_application_id",
    "message_relay_topic": "relay_topic",
    "message_relay_context": "relay_context",
    "message_relay_application": "relay_application",
}
_DEFAULT_METHODS = {"request_method", "fallback_method", "status_callback_method"}

FIELD_NAMES = {
    "name": "name",
    "phone_number": "number",
    "capabilities": "capabilities",
    "call_handler": "call_handler",
    "message_handler": "message_handler",
}


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT)


class PurchaseBody(_Body):
    number: str = Field(min_length=2, max_length=64)


class ImportBody(_Body):
    number: str = Field(min_length=5, max_length=30, pattern=r"^\+?\d+$")
    number_type: Literal["longcode", "tollfree"]
    capabilities: list[Literal["sms", "voice", "fax", "mms"]] | None = None


class UpdateBody(_Body):
    name: str | None = Field(default=None, max_length=255)
    call_handler: CallHandlerName | None = None
    call_receive_mode: Literal["voice", "fax"] | None = None
    call_request_url: str | None = None
    call_request_method: HttpMethod | None = None
    call_fallback_url: str | None = None
    call_fallback_method: HttpMethod | None = None
    call_status_callback_url: str | None = None
    call_status_callback_method: HttpMethod | None = None
    call_laml_application_id: str | None = None
    call_dialogflow_agent_id: str | None = None
    call_relay_topic: str | None = None
    call_relay_topic_status_callback_url: str | None = None
    call_relay_script_url: str | None = None
    call_relay_context: str | None = None
    call_relay_context_status_callback_url: str | None = None
    call_relay_application: str | None = None
    call_relay_connector_id: str | None = None
    call_sip_endpoint_id: str | None = None
    call_verto_resource: str | None = None
    call_video_room_id: str | None = None
    call_ai_agent_id: str | None = None
    call_flow_id: str | None = None
    call_flow_version: Literal["working_copy", "current_deployed"] | None = None
    message_handler: MessageHandlerName | None = None
    message_request_url: str | None = None
    message_request_method: HttpMethod | None = None
    message_fallback_url: str | None = None
    message_fallback_method: HttpMethod | None = None
    message_laml_application_id: str | None = None
    message_relay_topic: str | None = None
    message_relay_context: str | None = None
    message_relay_application: str | None = None


def number_type_out(core_type: str) -> str:
    return "toll-free" if core_type == "toll_free" else "longcode"


def number_type_in(value: str) -> str:
    """``tollfree`` (import) or ``toll-free`` (search, responses) -> ``toll_free``; else local."""
    return "toll_free" if value.replace("-", "").replace("_", "").lower() == "tollfree" else "local"


def import_row(body: ImportBody) -> dict[str, Any]:
    caps = body.capabilities if body.capabilities else ["sms", "voice", "fax", "mms"]
    row: dict[str, Any] = {"phone_number": body.number, "capabilities": common.capability_dict(caps)}
    if number_type_in(body.number_type) == "toll_free":
        row["number_type"] = "toll_free"
    # "longcode" covers local and mobile alike: the core reads which from the number itself.
    return row


def _handler_write(
    current: dict[str, Any] | None, kind: str | None, kind_sent: bool, fields: dict[str, Any]
) -> dict[str, Any] | None:
    base = {k: v for k, v in (current or {}).items() if v is not None}
    if kind_sent:
        if kind is None:
            return None
        base["type"] = kind
    for key, value in fields.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def update_request(body: UpdateBody, current: PhoneNumberRead) -> dict[str, Any]:
    """PhoneNumberUpdate fields for ``PUT /phone_numbers/{id}``: sent fields laid over the stored
    handlers (SignalWire updates are partial; the core stores each handler whole)."""
    sent = body.model_fields_set
    data: dict[str, Any] = {}
    if "name" in sent:
        data["name"] = body.name
    call_fields = {CALL_FIELDS[f]: getattr(body, f) for f in CALL_FIELDS if f in sent}
    if "call_handler" in sent or call_fields:
        data["call_handler"] = _handler_write(
            current.call_handler, body.call_handler, "call_handler" in sent, call_fields
        )
    message_fields = {MESSAGE_FIELDS[f]: getattr(body, f) for f in MESSAGE_FIELDS if f in sent}
    if "message_handler" in sent or message_fields:
        handler = _handler_write(
            current.message_handler, body.message_handler, "message_handler" in sent, message_fields
        )
        if handler is not None and "type" not in handler:
            raise common.invalid("message_handler", "is required to set message_* fields on this number")
        data["message_handler"] = handler
    return data


def phone_number(number: PhoneNumberRead) -> dict[str, Any]:
    call = number.call_handler or {}
    message = number.message_handler or {}
    call_type = call.get("type")
    out: dict[str, Any] = {
        "id": number.id,
        "number": number.phone_number,
        "name": number.name,
        "capabilities": common.capability_list(number.capabilities),
        "number_type": number_type_out(number.number_type),
        "e911_address_id": number.emergency_address_id,
        "e911_status": number.emergency_status,
        "created_at": common.iso(number.created_at),
        "updated_at": common.iso(number.updated_at),
        "next_billed_at": common.iso(number.next_billed_at),
        "call_handler": call_type if call_type and call_type != "agents" else None,
        "calling_handler_resource_id": None,
    }
    for field, core in CALL_FIELDS.items():
        value = call.get(core)
        if value is None and core in _DEFAULT_METHODS:
            value = "POST"
        if value is None and core == "receive_mode":
            value = "voice"
        out[field] = value
    out["message_handler"] = message.get("type")
    out["messaging_handler_resource_id"] = None
    for field, core in MESSAGE_FIELDS.items():
        value = message.get(core)
        if value is None and core in _DEFAULT_METHODS:
            value = "POST"
        out[field] = value
    out["country_code"] = number.country
    return out


def national_digits(e164_number: str) -> str:
    """The digits after the country code: what ``starts_with`` / ``ends_with`` match against."""
    try:
        parsed = phonenumbers.parse(e164_number, None)
    except phonenumbers.NumberParseException:
        return e164_number.lstrip("+")
    return phonenumbers.national_significant_number(parsed)


def matches(e164_number: str, starts_with: str | None, ends_with: str | None) -> bool:
    digits = national_digits(e164_number)
    return (not starts_with or digits.startswith(starts_with)) and (
        not ends_with or digits.endswith(ends_with)
    )


def available_number(item: AvailableNumberRead) -> dict[str, Any]:
    return {
        "number": item.phone_number,
        "region": item.region,
        "city": item.locality,
        "rate_center": None,
        "lata": None,
        "capabilities": {name: bool(item.capabilities.get(name)) for name in common.CAPABILITIES},
    }
