"""Zudu's phone-number shapes (Retell 4.x field names, LiveKit trunk ids) and their translation.

``POST /create`` registers a number the org already has (its SIP trunk carries the calls), as
Zudu's own create does: it is an import in the core. ``phone_number_type`` and
``number_provider`` as sent are kept in ``extras["zudu"]`` and read back; a number written
elsewhere shows ``CUSTOM`` (imported) or ``zudu-<carrier>`` (purchased). LiveKit ids map to the
SIP legs: ``outbound_trunk_id`` = ``sip_outbound.trunk_id``, ``inbound_trunk_id`` =
``sip_inbound.trunk_id``, ``dispatch_rule_id`` = ``sip_inbound.dispatch_rule_id``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from numberplane.agents.schemas import AgentRead
from numberplane.dialects import common
from numberplane.dialects.retell_map import single_agent
from numberplane.kernel.pagination import MAX_PAGE
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import PhoneNumberRead

DIALECT = "zudu"
# Zudu's sort_by -> the core's sortable column (created_at: the default, creation order).
SORT_BY = {
    "phone_number": "phone_number",
    "nickname": "name",
    "area_code": "area_code",
    "updated_at": "updated_at",
    "created_at": "created_at",
}
CUSTOM = "CUSTOM"

FIELD_NAMES = {
    "phone_number": "phone_number",
    "name": "nickname",
    "inbound_agents": "inbound_agent_id",
    "outbound_agents": "outbound_agent_id",
    "inbound_webhook_url": "inbound_webhook_url",
    "sip_outbound": "outbound_trunk_id",
    "carrier_account_id": "number_provider",
}


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT)

    # The org is the key's; a body naming an organization must name that one.
    organization_id: str | None = Field(default=None, max_length=64)


class CreateBody(_Body):
    phone_number: str = Field(min_length=1, max_length=64)
    area_code: int | None = None
    nickname: str | None = Field(default=None, max_length=255)
    inbound_agent_id: str | None = None
    outbound_agent_id: str | None = None
    inbound_agent_version: int | None = Field(default=None, ge=1)
    outbound_agent_version: int | None = Field(default=None, ge=1)
    inbound_webhook_url: str | None = None
    number_provider: str | None = Field(default=None, max_length=32)
    outbound_trunk_id: str | None = Field(default=None, max_length=100)
    phone_number_type: str | None = Field(default=None, max_length=32)


class ImportBody(_Body):
    phone_number: str = Field(min_length=1, max_length=64)
    provider: Literal["twilio", "plivo"] | None = None
    account_sid: str | None = None
    auth_token: str | None = None
    nickname: str | None = Field(default=None, max_length=255)
    inbound_agent_id: str | None = None
    outbound_agent_id: str | None = None


class UpdateBody(_Body):
    nickname: str | None = Field(
        default=None, max_length=255, validation_alias=AliasChoices("nickname", "label")
    )
    inbound_agent_id: str | None = None
    outbound_agent_id: str | None = None
    inbound_agent_version: int | None = Field(default=None, ge=1)
    outbound_agent_version: int | None = Field(default=None, ge=1)
    inbound_webhook_url: str | None = None
    outbound_trunk_id: str | None = Field(default=None, max_length=100)
    number_provider: str | None = Field(default=None, max_length=32)


class FilterCriteria(_Body):
    nickname: str | None = None
    area_code: int | str | None = None
    agent_id: str | None = None


class ListBody(_Body):
    page: int = Field(default=0, ge=0, le=MAX_PAGE)
    limit: int = Field(default=50, ge=1, le=1000)
    sort_by: str | None = None
    sort_order: Literal["ascending", "descending"] = "descending"
    filter_criteria: FilterCriteria | None = None


def create_row(body: CreateBody) -> dict[str, Any]:
    row: dict[str, Any] = {"phone_number": body.phone_number}
    if body.nickname is not None:
        row["name"] = body.nickname
    if body.inbound_agent_id:
        row["inbound_agents"] = common.bindings(body.inbound_agent_id, body.inbound_agent_version)
    if body.outbound_agent_id:
        row["outbound_agents"] = common.bindings(body.outbound_agent_id, body.outbound_agent_version)
    if body.inbound_webhook_url:
        row["inbound_webhook_url"] = body.inbound_webhook_url
    if body.outbound_trunk_id:
        row["sip_outbound"] = {"trunk_id": body.outbound_trunk_id}
    extras = {
        k: v
        for k, v in {
            "phone_number_type": body.phone_number_type,
            "number_provider": body.number_provider,
        }.items()
        if v
    }
    if extras:
        row["extras"] = {DIALECT: extras}
    return row


def import_row(body: ImportBody) -> dict[str, Any]:
    row: dict[str, Any] = {"phone_number": body.phone_number}
    if body.nickname is not None:
        row["name"] = body.nickname
    if body.inbound_agent_id:
        row["inbound_agents"] = common.bindings(body.inbound_agent_id)
    if body.outbound_agent_id:
        row["outbound_agents"] = common.bindings(body.outbound_agent_id)
    extras: dict[str, Any] = {"phone_number_type": CUSTOM}
    if body.provider:
        extras["number_provider"] = body.provider
    row["extras"] = {DIALECT: extras}
    return row


def update_request(body: UpdateBody, current: PhoneNumberRead) -> dict[str, Any]:
    sent = body.model_fields_set
    data: dict[str, Any] = {}
    if "nickname" in sent:
        data["name"] = body.nickname
    for direction in ("inbound", "outbound"):
        id_field, version_field = f"{direction}_agent_id", f"{direction}_agent_version"
        if id_field in sent:
            data[f"{direction}_agents"] = common.bindings(
                getattr(body, id_field), getattr(body, version_field)
            )
        elif version_field in sent:
            binding = common.primary_agent(getattr(current, f"{direction}_agents"))
            if binding is None:
                raise common.invalid(version_field, f"the number has no {direction} agent to pin")
            data[f"{direction}_agents"] = common.bindings(binding.agent_id, getattr(body, version_field))
    if "inbound_webhook_url" in sent:
        data["inbound_webhook_url"] = body.inbound_webhook_url or None
    if "outbound_trunk_id" in sent:
        data["sip_outbound"] = (
            common.sip_write(current.sip_outbound, {"trunk_id": body.outbound_trunk_id})
            if body.outbound_trunk_id or current.sip_outbound
            else None
        )
    if "number_provider" in sent:
        data["extras"] = common.extras_write(
            current.extras, DIALECT, {"number_provider": body.number_provider}
        )
    return data


def sort_column(sort_by: str | None) -> str:
    """The core column for Zudu's ``sort_by`` (none given: creation order)."""
    if sort_by in (None, ""):
        return SORT_BY["created_at"]
    column = SORT_BY.get(sort_by)
    if column is None:
        raise common.invalid("sort_by", f"must be one of {', '.join(SORT_BY)}")
    return column


def phone_number_type(number: PhoneNumberRead) -> str:
    stored = common.extras_of(number, DIALECT).get("phone_number_type")
    if stored:
        return str(stored)
    if number.origin == "imported":
        return CUSTOM
    return f"zudu-{number.carrier}"


def number_provider(number: PhoneNumberRead) -> str | None:
    stored = common.extras_of(number, DIALECT).get("number_provider")
    if stored:
        return str(stored)
    return number.carrier if number.origin == "purchased" else None


def phone_number(number: PhoneNumberRead, agents: dict[str, AgentRead]) -> dict[str, Any]:
    inbound_id, inbound_version = single_agent(number, "inbound", agents)
    outbound_id, outbound_version = single_agent(number, "outbound", agents)
    sip_in, sip_out = number.sip_inbound, number.sip_outbound
    return {
        "phone_number": number.phone_number,
        "organization_id": number.org_id,
        "phone_number_pretty": number.phone_number_pretty,
        "area_code": common.area_code_int(number),
        "nickname": number.name,
        "phone_number_type": phone_number_type(number),
        "inbound_agent_id": inbound_id,
        "outbound_agent_id": outbound_id,
        "inbound_agent_version": inbound_version,
        "outbound_agent_version": outbound_version,
        "inbound_webhook_url": number.inbound_webhook_url,
        "number_provider": number_provider(number),
        "outbound_trunk_id": sip_out.trunk_id if sip_out else None,
        "inbound_trunk_id": sip_in.trunk_id if sip_in else None,
        "dispatch_rule_id": sip_in.dispatch_rule_id if sip_in else None,
        "created_at": common.iso(number.created_at),
        "updated_at": common.iso(number.updated_at),
        "last_modification_timestamp": number.last_modification_timestamp,
    }


def cleanup_results(number: PhoneNumberRead) -> dict[str, bool]:
    sip_in, sip_out = number.sip_inbound, number.sip_outbound
    return {
        "dispatch_rule": bool(sip_in and sip_in.dispatch_rule_id),
        "inbound_trunk": bool(sip_in and sip_in.trunk_id),
        "outbound_trunk": bool(sip_out and sip_out.trunk_id),
    }


def envelope(message: str, data: Any) -> dict[str, Any]:
    return {"message": message, "status": "success", "error": None, "data": data}
