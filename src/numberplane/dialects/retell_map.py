"""Retell's phone-number shapes and their translation (pure functions). Zudu copies Retell's
older single-agent shape, so the agent-binding helpers here serve both.

PhoneNumberResponse: ``phone_number, phone_number_type, phone_number_pretty, area_code,
nickname, inbound/outbound(_sms)_agents [{agent_id, weight, agent_version?}], the deprecated
inbound/outbound_agent_id and _version, inbound(_sms)_webhook_url, allowed_*_country_list,
fallback_number, sip_outbound_trunk_config {termination_uri, auth_username, transport, codecs},
last_modification_timestamp`` (ms).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from numberplane.agents.schemas import AgentRead
from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import AgentBindingRead, PhoneNumberRead

DIALECT = "retell"
LATEST = ("latest", "latest_published")
DIRECTIONS = ("inbound", "outbound", "inbound_sms", "outbound_sms")

FIELD_NAMES = {
    "phone_number": "phone_number",
    "area_code": "area_code",
    "country": "country_code",
    "number_type": "toll_free",
    "name": "nickname",
    "inbound_webhook_url": "inbound_webhook_url",
    "inbound_sms_webhook_url": "inbound_sms_webhook_url",
    "allowed_inbound_countries": "allowed_inbound_country_list",
    "allowed_outbound_countries": "allowed_outbound_country_list",
    "fallback": "fallback_number",
    "inbound_agents": "inbound_agents",
    "outbound_agents": "outbound_agents",
    "inbound_sms_agents": "inbound_sms_agents",
    "outbound_sms_agents": "outbound_sms_agents",
    "sip_outbound": "termination_uri",
    "carrier_account_id": "number_provider",
}


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT)


class AgentWeight(_Body):
    agent_id: str = Field(min_length=1, max_length=64)
    weight: float
    agent_version: int | str | None = None


class _Agents(_Body):
    inbound_agents: list[AgentWeight] | None = None
    outbound_agents: list[AgentWeight] | None = None
    # Deprecated single-agent fields (Retell 4.x/5.x SDKs and Zudu).
    inbound_agent_id: str | None = None
    outbound_agent_id: str | None = None
    inbound_agent_version: int | None = None
    outbound_agent_version: int | None = None


class CreateBody(_Agents):
    area_code: int | None = None
    country_code: Literal["US", "CA"] | None = None
    toll_free: bool | None = None
    phone_number: str | None = None
    number_provider: Literal["twilio", "telnyx"] | None = None
    nickname: str | None = None
    inbound_webhook_url: str | None = None
    allowed_inbound_country_list: list[str] | None = None
    allowed_outbound_country_list: list[str] | None = None
    fallback_number: str | None = None
    transport: str | None = None


class ImportBody(_Agents):
    phone_number: str = Field(min_length=1)
    termination_uri: str = Field(min_length=1, max_length=255)
    sip_trunk_auth_username: str | None = None
    sip_trunk_auth_password: str | None = None
    transport: str | None = None
    ignore_e164_validation: bool | None = None
    codecs: list[str] | None = None
    nickname: str | None = None
    inbound_webhook_url: str | None = None
    allowed_inbound_country_list: list[str] | None = None
    allowed_outbound_country_list: list[str] | None = None


class UpdateBody(_Agents):
    nickname: str | None = None
    inbound_webhook_url: str | None = None
    inbound_sms_webhook_url: str | None = None
    fallback_number: str | None = None
    inbound_sms_agents: list[AgentWeight] | None = None
    outbound_sms_agents: list[AgentWeight] | None = None
    allowed_inbound_country_list: list[str] | None = None
    allowed_outbound_country_list: list[str] | None = None
    termination_uri: str | None = None
    auth_username: str | None = None
    auth_password: str | None = None
    transport: str | None = None
    codecs: list[str] | None = None


def _version_in(value: int | str | None, field: str) -> int | None:
    """A Retell agent_version: a number pins it; ``latest`` (or none) follows the latest."""
    if value is None or isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text.lower() in LATEST:
        return None
    raise common.invalid(field, f"version tag {value!r} is not supported: use a version number or 'latest'")


def agents_in(items: list[AgentWeight], field: str) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(items):
        binding: dict[str, Any] = {"agent_id": item.agent_id, "weight": item.weight}
        version = _version_in(item.agent_version, f"{field}[{i}].agent_version")
        if version is not None:
            binding["version"] = version
        out.append(binding)
    return out


def agent_changes(body: _Agents, *, create: bool) -> dict[str, Any]:
    """Core binding changes: the weighted lists win; the deprecated single-agent fields apply
    when a list is absent or empty (Retell: "if not set or empty, fallback to inbound_agent_id")."""
    sent = body.model_fields_set
    out: dict[str, Any] = {}
    for direction in ("inbound", "outbound"):
        items: list[AgentWeight] | None = getattr(body, f"{direction}_agents")
        single_id: str | None = getattr(body, f"{direction}_agent_id")
        single_version: int | None = getattr(body, f"{direction}_agent_version")
        key = f"{direction}_agents"
        if items:
            out[key] = agents_in(items, key)
        elif f"{direction}_agent_id" in sent:
            out[key] = common.bindings(single_id, single_version)
        elif key in sent and not create:
            out[key] = []
    for direction in ("inbound_sms", "outbound_sms"):
        key = f"{direction}_agents"
        if key in sent:
            items = getattr(body, key)
            out[key] = agents_in(items, key) if items else []
    return out


def _common_settings(body: CreateBody | ImportBody | UpdateBody) -> dict[str, Any]:
    sent = body.model_fields_set
    data: dict[str, Any] = {}
    if "nickname" in sent:
        data["name"] = body.nickname
    if "inbound_webhook_url" in sent:
        data["inbound_webhook_url"] = body.inbound_webhook_url or None
    if "allowed_inbound_country_list" in sent:
        data["allowed_inbound_countries"] = body.allowed_inbound_country_list or None
    if "allowed_outbound_country_list" in sent:
        data["allowed_outbound_countries"] = body.allowed_outbound_country_list or None
    return data


def transport_in(value: str | None) -> str | None:
    return value.strip().lower() if value else None


def buy_request(body: CreateBody) -> dict[str, Any]:
    data: dict[str, Any] = {
        "country": body.country_code or "US",
        "number_type": "toll_free" if body.toll_free else "local",
        **_common_settings(body),
        **agent_changes(body, create=True),
    }
    if body.phone_number:
        data["phone_number"] = body.phone_number
    if body.area_code is not None:
        data["area_code"] = str(body.area_code)
    if body.fallback_number:
        data["fallback"] = {"number": body.fallback_number}
    if body.transport:
        data["extras"] = {DIALECT: {"transport": body.transport.upper()}}
    return data


def import_row(body: ImportBody) -> dict[str, Any]:
    sip: dict[str, Any] = {"endpoint": body.termination_uri}
    if body.sip_trunk_auth_username:
        sip["username"] = body.sip_trunk_auth_username
    if body.sip_trunk_auth_password:
        sip["password"] = body.sip_trunk_auth_password
    if body.transport:
        sip["transport"] = transport_in(body.transport)
    if body.codecs is not None:
        sip["codecs"] = body.codecs
    return {
        "phone_number": body.phone_number,
        "sip_outbound": sip,
        **_common_settings(body),
        **agent_changes(body, create=True),
    }


_SIP_UPDATES = {
    "termination_uri": "endpoint",
    "auth_username": "username",
    "auth_password": "password",
    "codecs": "codecs",
}


def update_request(body: UpdateBody, current: PhoneNumberRead) -> dict[str, Any]:
    sent = body.model_fields_set
    data = {**_common_settings(body), **agent_changes(body, create=False)}
    if "inbound_sms_webhook_url" in sent:
        data["inbound_sms_webhook_url"] = body.inbound_sms_webhook_url or None
    if "fallback_number" in sent:
        data["fallback"] = {"number": body.fallback_number} if body.fallback_number else None
    sip = {core: getattr(body, field) for field, core in _SIP_UPDATES.items() if field in sent}
    if "transport" in sent:
        if current.sip_outbound is not None or "endpoint" in sip:
            sip["transport"] = transport_in(body.transport)
        else:
            # A purchased number has no SIP trunk: Retell's transport is kept as it was given.
            upper = body.transport.upper() if body.transport else None
            data["extras"] = common.extras_write(current.extras, DIALECT, {"transport": upper})
    if sip:
        data["sip_outbound"] = common.sip_write(current.sip_outbound, sip)
    return data


def phone_number_type(number: PhoneNumberRead) -> str:
    if number.origin == "imported":
        return "custom"
    return "retell-telnyx" if number.carrier == "telnyx" else "retell-twilio"


def _weights(items: list[AgentBindingRead]) -> list[dict[str, Any]]:
    out = []
    for b in items:
        item: dict[str, Any] = {"agent_id": b.agent_id, "weight": b.weight}
        if b.version is not None:
            item["agent_version"] = b.version
        out.append(item)
    return out


def single_agent(
    number: PhoneNumberRead, direction: str, agents: dict[str, AgentRead]
) -> tuple[str | None, int | None]:
    """(agent id, version) for a single-agent view: the primary binding, its version resolved."""
    binding = common.primary_agent(getattr(number, f"{direction}_agents"))
    return (binding.agent_id if binding else None, common.effective_version(binding, agents))


def sip_trunk_config(number: PhoneNumberRead) -> dict[str, Any] | None:
    sip = number.sip_outbound
    stored_transport = common.extras_of(number, DIALECT).get("transport")
    if sip is None:
        if stored_transport:
            return {"termination_uri": None, "auth_username": None, "transport": stored_transport}
        return None
    out: dict[str, Any] = {
        "termination_uri": sip.endpoint,
        "auth_username": sip.username,
        "transport": sip.transport.upper() if sip.transport else stored_transport,
    }
    if sip.codecs is not None:
        out["codecs"] = sip.codecs
    return out


def phone_number(number: PhoneNumberRead, agents: dict[str, AgentRead]) -> dict[str, Any]:
    inbound_id, inbound_version = single_agent(number, "inbound", agents)
    outbound_id, outbound_version = single_agent(number, "outbound", agents)
    fallback = (number.fallback or {}).get("number")
    out: dict[str, Any] = {
        "phone_number": number.phone_number,
        "phone_number_type": phone_number_type(number),
        "phone_number_pretty": number.phone_number_pretty,
        "nickname": number.name,
        "inbound_agents": _weights(number.inbound_agents),
        "outbound_agents": _weights(number.outbound_agents),
        "inbound_sms_agents": _weights(number.inbound_sms_agents),
        "outbound_sms_agents": _weights(number.outbound_sms_agents),
        "inbound_agent_id": inbound_id,
        "outbound_agent_id": outbound_id,
        "inbound_agent_version": inbound_version,
        "outbound_agent_version": outbound_version,
        "inbound_webhook_url": number.inbound_webhook_url,
        "inbound_sms_webhook_url": number.inbound_sms_webhook_url,
        "allowed_inbound_country_list": number.allowed_inbound_countries,
        "allowed_outbound_country_list": number.allowed_outbound_countries,
        "fallback_number": fallback,
        "sip_outbound_trunk_config": sip_trunk_config(number),
        "last_modification_timestamp": number.last_modification_timestamp,
    }
    area = common.area_code_int(number)
    if area is not None:
        out["area_code"] = area
    return out


def error_body(message: str) -> dict[str, Any]:
    return {"status": "error", "message": message}
