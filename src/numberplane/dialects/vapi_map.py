"""Vapi's phone-number shapes (a union on ``provider``) and their translation (pure functions).

``assistantId`` is the number's inbound agent; ``server.url`` / ``server.timeoutSeconds`` its
inbound webhook and that webhook's timeout; ``fallbackDestination`` its fallback (a number or a
SIP URI; the whole object, with ``message``, ``callerId`` and the like, is kept and returned);
``name`` its name. ``workflowId``, ``squadId``, ``hooks``, the rest of ``server``, ``smsEnabled``,
``numberE164CheckEnabled``, ``numberDesiredAreaCode`` and ``credentialId`` are kept in
``extras["vapi"]`` and returned. The provider a number shows is the one it was made with here;
otherwise ``vapi`` for a bought number and the carrier (or ``byo-phone-number``) for an import.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import PhoneNumberRead

DIALECT = "vapi"
PROVIDERS = ("vapi", "twilio", "vonage", "telnyx", "byo-phone-number")
Provider = Literal["vapi", "twilio", "vonage", "telnyx", "byo-phone-number"]
STATUS = {"active": "active", "pending": "activating"}
MAX_HOOKS = 50
MAX_KEPT_BYTES = 16 * 1024

FIELD_NAMES = {
    "phone_number": "number",
    "area_code": "numberDesiredAreaCode",
    "name": "name",
    "inbound_agents": "assistantId",
    "inbound_webhook_url": "server.url",
    "inbound_webhook_timeout_ms": "server.timeoutSeconds",
    "fallback": "fallbackDestination",
    "carrier_account_id": "credentialId",
    "sip_outbound": "credentialId",
}


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT)


class ServerBody(_Body):
    url: str | None = Field(default=None, max_length=2048)
    timeoutSeconds: float | None = Field(default=None, ge=1, le=30)
    headers: dict[str, Any] | None = None
    credentialId: str | None = Field(default=None, max_length=64)
    backoffPlan: dict[str, Any] | None = None
    staticIpAddressesEnabled: bool | None = None
    encryptedPaths: list[str] | None = Field(default=None, max_length=50)


class _Common(_Body):
    name: str | None = Field(default=None, max_length=255)
    assistantId: str | None = Field(default=None, max_length=64)
    workflowId: str | None = Field(default=None, max_length=64)
    squadId: str | None = Field(default=None, max_length=64)
    server: ServerBody | None = None
    fallbackDestination: dict[str, Any] | None = None
    hooks: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_HOOKS)
    number: str | None = Field(default=None, max_length=64)
    numberE164CheckEnabled: bool | None = None
    credentialId: str | None = Field(default=None, max_length=64)
    twilioAccountSid: str | None = Field(default=None, max_length=64)
    twilioAuthToken: str | None = Field(default=None, max_length=512)
    twilioApiKey: str | None = Field(default=None, max_length=64)
    twilioApiSecret: str | None = Field(default=None, max_length=512)
    smsEnabled: bool | None = None
    numberDesiredAreaCode: str | None = Field(default=None, pattern=r"^\d{3}$")
    sipUri: str | None = Field(default=None, max_length=255)
    authentication: dict[str, Any] | None = None


class CreateBody(_Common):
    provider: Provider


class UpdateBody(_Common):
    provider: Provider | None = None


# Kept in extras["vapi"] as sent (None removes).
EXTRA_FIELDS = ("workflowId", "squadId", "hooks", "smsEnabled", "numberE164CheckEnabled", "credentialId")
SERVER_EXTRAS = ("credentialId", "backoffPlan", "staticIpAddressesEnabled", "encryptedPaths")


def fallback_in(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type", "number")
    if kind == "number":
        if not value.get("number"):
            raise common.invalid("fallbackDestination.number", "is required for a number destination")
        return {"number": value["number"]}
    if kind == "sip":
        if not value.get("sipUri"):
            raise common.invalid("fallbackDestination.sipUri", "is required for a sip destination")
        return {"sip_uri": value["sipUri"]}
    raise common.invalid("fallbackDestination.type", "must be number or sip")


def fallback_out(number: PhoneNumberRead) -> dict[str, Any] | None:
    core = number.fallback or {}
    kept = common.extras_of(number, DIALECT).get("fallbackDestination")
    if core.get("number"):
        if isinstance(kept, dict) and kept.get("type", "number") == "number":
            if kept.get("number") == core["number"]:
                return kept
        return {"type": "number", "number": core["number"]}
    if core.get("sip_uri"):
        if isinstance(kept, dict) and kept.get("type") == "sip" and kept.get("sipUri") == core["sip_uri"]:
            return kept
        return {"type": "sip", "sipUri": core["sip_uri"]}
    return None


def _bounded(body: _Common) -> None:
    """Objects kept as sent (hooks, the fallback object, server settings) are size-limited."""
    for name in ("hooks", "fallbackDestination", "server"):
        value = getattr(body, name)
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_none=True)
        if value is not None and len(json.dumps(value, default=str)) > MAX_KEPT_BYTES:
            raise common.invalid(name, f"must be at most {MAX_KEPT_BYTES // 1024} KiB as JSON")


def settings(body: _Common, current: PhoneNumberRead | None) -> dict[str, Any]:
    """Core PhoneNumberConfig fields for the common settings sent (create or update)."""
    _bounded(body)
    sent = body.model_fields_set
    data: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    if "name" in sent:
        data["name"] = body.name
    if "assistantId" in sent:
        data["inbound_agents"] = common.bindings(body.assistantId)
    if "fallbackDestination" in sent:
        data["fallback"] = fallback_in(body.fallbackDestination)
        extras["fallbackDestination"] = body.fallbackDestination
    if "server" in sent:
        server = body.server
        if server is not None and server.headers:
            raise common.invalid(
                "server.headers",
                "custom headers are not sent: Numberplane signs its webhook requests instead (see README)",
            )
        data["inbound_webhook_url"] = server.url if server and server.url else None
        if server is None or "timeoutSeconds" in server.model_fields_set:
            timeout = server.timeoutSeconds if server else None
            data["inbound_webhook_timeout_ms"] = round(timeout * 1000) if timeout is not None else None
        kept = {k: getattr(server, k) for k in SERVER_EXTRAS if server and getattr(server, k) is not None}
        extras["server"] = kept or None
    for name in EXTRA_FIELDS:
        if name in sent:
            extras[name] = getattr(body, name)
    if isinstance(body, CreateBody):
        extras["provider"] = body.provider
        if body.numberDesiredAreaCode:
            extras["numberDesiredAreaCode"] = body.numberDesiredAreaCode
    if extras:
        data["extras"] = common.extras_write(current.extras if current else None, DIALECT, extras)
    return data


def provider_of(number: PhoneNumberRead) -> str:
    stored = common.extras_of(number, DIALECT).get("provider")
    if stored in PROVIDERS:
        return str(stored)
    if number.origin == "purchased":
        return "vapi"
    if number.carrier in ("twilio", "telnyx", "vonage"):
        return number.carrier
    return "byo-phone-number"


def credential_id(number: PhoneNumberRead) -> str | None:
    kept = common.extras_of(number, DIALECT).get("credentialId")
    if kept:
        return str(kept)
    if number.carrier_account_id and number.origin == "imported":
        return number.carrier_account_id
    return number.sip_outbound.trunk_id if number.sip_outbound else None


def server_out(number: PhoneNumberRead) -> dict[str, Any] | None:
    kept = common.extras_of(number, DIALECT).get("server") or {}
    if not number.inbound_webhook_url and not kept:
        return None
    out: dict[str, Any] = {"url": number.inbound_webhook_url}
    if number.inbound_webhook_timeout_ms is not None:
        out["timeoutSeconds"] = number.inbound_webhook_timeout_ms / 1000
    out.update({k: v for k, v in kept.items() if k in SERVER_EXTRAS})
    return out


def phone_number(
    number: PhoneNumberRead, accounts: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The Vapi resource for a number. ``accounts``: public settings of carrier accounts by id
    (for ``twilioAccountSid``); secrets are never read, so never returned."""
    extras = common.extras_of(number, DIALECT)
    provider = provider_of(number)
    binding = common.primary_agent(number.inbound_agents)
    out: dict[str, Any] = {
        "id": number.id,
        "orgId": number.org_id,
        "createdAt": common.iso(number.created_at, millis=True),
        "updatedAt": common.iso(number.updated_at, millis=True),
        "status": STATUS.get(number.status, "blocked"),
        "provider": provider,
        "number": number.phone_number,
        "name": number.name,
        "assistantId": binding.agent_id if binding else None,
        "workflowId": extras.get("workflowId"),
        "squadId": extras.get("squadId"),
        "server": server_out(number),
        "fallbackDestination": fallback_out(number),
        "hooks": extras.get("hooks"),
    }
    if provider == "twilio":
        account = (accounts or {}).get(number.carrier_account_id or "", {})
        out["twilioAccountSid"] = account.get("account_sid")
        out["smsEnabled"] = extras.get("smsEnabled", True)
    elif provider in ("telnyx", "vonage"):
        out["credentialId"] = credential_id(number)
    elif provider == "byo-phone-number":
        out["credentialId"] = credential_id(number)
        out["numberE164CheckEnabled"] = extras.get("numberE164CheckEnabled", True)
    else:
        out["numberDesiredAreaCode"] = extras.get("numberDesiredAreaCode")
        out["sipUri"] = None
    return out


def error_body(message: str | list[str], status: int, reason: str) -> dict[str, Any]:
    return {"message": message, "error": reason, "statusCode": status}
