"""Freya Voice's phone-number shapes and their translation (pure functions).

Freya registers numbers the customer already owns (BYO SIP): ``POST /phone-numbers`` is an
import. ``workspaceId`` is the org's id; ``userId`` is the org's id or the presenting key's id
(stored, and read back). ``config.sipOutbound`` is the core ``sip_outbound`` leg,
``config.sipInbound`` and ``config.originationUri`` the ``sip_inbound`` leg. Workflow ids,
``configType``, ``voiceConfig``, ``messagingConfig`` and ``emergencyCalls`` have no core meaning
and live in ``extras["freya"]``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from numberplane.agents.schemas import AgentRead
from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import PhoneNumberRead

DIALECT = "freya"
ENTITY_TYPE = "agent"

TRANSPORTS_IN = {"UDP": "udp", "TCP": "tcp", "TLS": "tls"}
TRANSPORTS_OUT = {v: k for k, v in TRANSPORTS_IN.items()}
CONFIG_TYPES = ("agents", "workflows")

FIELD_NAMES = {
    "phone_number": "number",
    "name": "friendlyName",
    "inbound_agents": "config.inboundAgentId",
    "outbound_agents": "config.outboundAgentId",
    "sip_outbound": "config.sipOutbound",
    "sip_inbound": "config.sipInbound",
    "capabilities": "config.capabilities",
}


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _voice_flag(value: Any) -> Any:
    """``capabilities.voice`` is a string in Freya's schema; accept it or a boolean."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("enabled", "true", "yes", "on", "1", "inbound_outbound", "both"):
            return True
        if text in ("disabled", "false", "no", "off", "0", "none", ""):
            return False
    return value


TransportProtocol = Annotated[Literal["UDP", "TCP", "TLS"], BeforeValidator(_upper)]
ConfigType = Annotated[Literal["agents", "workflows"], BeforeValidator(_lower)]


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT
    )


class Header(_Body):
    key: str
    value: str


class Capabilities(_Body):
    voice: Annotated[bool | None, BeforeValidator(_voice_flag)] = None
    sms: bool | None = None


class SipInbound(_Body):
    enabled: bool | None = None


class SipOutbound(_Body):
    enabled: bool | None = None
    endpoint: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    from_domain: str | None = None
    transport_protocol: TransportProtocol | None = None
    secure_media: bool | None = None
    headers: list[Header] | None = None


class Config(_Body):
    config_type: ConfigType | None = None
    inbound_agent_id: str | None = None
    outbound_agent_id: str | None = None
    inbound_workflow_id: str | None = None
    outbound_workflow_id: str | None = None
    capabilities: Capabilities | None = None
    voice_config: str | None = None
    messaging_config: str | None = None
    emergency_calls: bool | None = None
    origination_uri: str | None = None
    sip_inbound: SipInbound | None = None
    sip_outbound: SipOutbound | None = None


class CreateBody(_Body):
    number: str = Field(min_length=3, max_length=20)
    friendly_name: str | None = Field(default=None, max_length=255)
    workspace_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=64)
    config: Config | None = None


class UpdateItem(_Body):
    id: str = Field(min_length=1, max_length=64)
    number: str | None = None
    friendly_name: str | None = Field(default=None, max_length=255)
    config: Config | None = None


class BulkUpdateBody(_Body):
    workspace_id: str = Field(min_length=1, max_length=64)
    phone_numbers: list[UpdateItem] = Field(min_length=1, max_length=1000)


_EXTRA_KEYS = {
    "config_type": "configType",
    "inbound_workflow_id": "inboundWorkflowId",
    "outbound_workflow_id": "outboundWorkflowId",
    "voice_config": "voiceConfig",
    "messaging_config": "messagingConfig",
    "emergency_calls": "emergencyCalls",
}


def _sip_outbound_updates(sip: SipOutbound) -> dict[str, Any]:
    names = {
        "enabled": "enabled",
        "endpoint": "endpoint",
        "port": "port",
        "username": "username",
        "password": "password",
        "from_domain": "from_domain",
        "secure_media": "secure_media",
    }
    out: dict[str, Any] = {}
    for field in sip.model_fields_set:
        value = getattr(sip, field)
        if field == "transport_protocol":
            out["transport"] = TRANSPORTS_IN[value] if value else None
        elif field == "headers":
            out["headers"] = [h.model_dump() for h in value] if value is not None else None
        elif field in names:
            out[names[field]] = value
    return out


def config_changes(
    config: Config | None, current: PhoneNumberRead | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(core field changes, freya extras changes) for the fields ``config`` sets."""
    core: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    if config is None:
        return core, extras
    sent = config.model_fields_set
    if "inbound_agent_id" in sent:
        core["inbound_agents"] = common.bindings(config.inbound_agent_id)
    if "outbound_agent_id" in sent:
        core["outbound_agents"] = common.bindings(config.outbound_agent_id)
    if "capabilities" in sent:
        caps = dict((current.capabilities if current else None) or {"voice": True})
        if config.capabilities is not None:
            for name in config.capabilities.model_fields_set:
                value = getattr(config.capabilities, name)
                if value is not None:
                    caps[name] = value
        core["capabilities"] = caps
    inbound: dict[str, Any] = {}
    if "origination_uri" in sent:
        inbound["origination_uri"] = config.origination_uri
    if "sip_inbound" in sent and config.sip_inbound is not None:
        if config.sip_inbound.enabled is not None:
            inbound["enabled"] = config.sip_inbound.enabled
    if inbound:
        core["sip_inbound"] = common.sip_write(current.sip_inbound if current else None, inbound)
    if "sip_outbound" in sent:
        if config.sip_outbound is None:
            core["sip_outbound"] = None
        else:
            core["sip_outbound"] = common.sip_write(
                current.sip_outbound if current else None, _sip_outbound_updates(config.sip_outbound)
            )
    for field, key in _EXTRA_KEYS.items():
        if field in sent:
            extras[key] = getattr(config, field)
    return core, extras


def import_row(body: CreateBody, user_id: str) -> dict[str, Any]:
    """PhoneNumberImportRow fields for ``POST /phone-numbers`` (registration, no carrier)."""
    core, extras = config_changes(body.config, None)
    extras["userId"] = user_id
    row: dict[str, Any] = {"phone_number": body.number, **core}
    if body.friendly_name is not None:
        row["name"] = body.friendly_name
    row["extras"] = {DIALECT: {k: v for k, v in extras.items() if v is not None}}
    return row


def update_patch(item: UpdateItem, current: PhoneNumberRead) -> dict[str, Any]:
    """PhoneNumberUpdate fields for one item of ``PUT /phone-numbers``."""
    core, extras = config_changes(item.config, current)
    if "friendly_name" in item.model_fields_set:
        core["name"] = item.friendly_name
    if extras:
        core["extras"] = common.extras_write(current.extras, DIALECT, extras)
    return core


def phone_number(number: PhoneNumberRead, agents: dict[str, AgentRead]) -> dict[str, Any]:
    mine = common.extras_of(number, DIALECT)
    inbound = common.primary_agent(number.inbound_agents)
    outbound = common.primary_agent(number.outbound_agents)
    inbound_agent = agents.get(inbound.agent_id) if inbound else None
    outbound_agent = agents.get(outbound.agent_id) if outbound else None
    sip_in = number.sip_inbound
    sip_out = number.sip_outbound
    caps = number.capabilities or {}
    config: dict[str, Any] = {
        "capabilities": {
            "voice": "enabled" if caps.get("voice") else "disabled",
            "sms": bool(caps.get("sms")),
        },
        "voiceConfig": mine.get("voiceConfig"),
        "messagingConfig": mine.get("messagingConfig"),
        "emergencyCalls": mine.get("emergencyCalls"),
        "configType": mine.get("configType") or "agents",
        "inboundAgentId": inbound.agent_id if inbound else None,
        "outboundAgentId": outbound.agent_id if outbound else None,
        "inboundWorkflowId": mine.get("inboundWorkflowId"),
        "outboundWorkflowId": mine.get("outboundWorkflowId"),
        "originationUri": sip_in.origination_uri if sip_in else None,
        "sipInbound": {"enabled": bool(sip_in and sip_in.enabled)},
        "sipOutbound": {
            "enabled": bool(sip_out and sip_out.enabled),
            "endpoint": sip_out.endpoint if sip_out else None,
            "port": sip_out.port if sip_out else None,
            "username": sip_out.username if sip_out else None,
            # Write-only: a stored password is never returned.
            "password": None,
            "fromDomain": sip_out.from_domain if sip_out else None,
            "transportProtocol": TRANSPORTS_OUT.get(sip_out.transport or "") if sip_out else None,
            "secureMedia": sip_out.secure_media if sip_out else None,
            "headers": (sip_out.headers or []) if sip_out else [],
        },
    }
    return {
        "id": number.id,
        "number": number.phone_number,
        "workspaceId": number.org_id,
        "userId": mine.get("userId") or number.org_id,
        "createdAt": common.iso(number.created_at, millis=True),
        "updatedAt": common.iso(number.updated_at, millis=True),
        "friendlyName": number.name,
        "config": config,
        "inboundAgentName": inbound_agent.name if inbound_agent else None,
        "outboundAgentName": outbound_agent.name if outbound_agent else None,
        "inboundAgentEntityType": ENTITY_TYPE if inbound else None,
        "outboundAgentEntityType": ENTITY_TYPE if outbound else None,
        "inboundAgentWorkflowId": mine.get("inboundWorkflowId"),
        "outboundAgentWorkflowId": mine.get("outboundWorkflowId"),
    }


def envelope(message: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "data": {"message": message, "result": result}}


def pagination(total: int, limit: int, offset: int) -> dict[str, Any]:
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "hasNext": offset + limit < total,
        "hasPrevious": offset > 0,
    }
