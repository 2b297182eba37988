"""A number's settings: writing the sent fields onto a row, its agent bindings, and what
Numberplane sets at the carrier for it.

Shared by every step that writes settings (buy, import, update), so a field means the same
thing whichever way it arrives. Absent means unchanged, ``None`` clears.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.agents.models import Agent
from numberplane.carriers.base import NumberConfig
from numberplane.carriers.urls import number_config_for
from numberplane.kernel.crypto import encrypt
from numberplane.kernel.errors import FieldError, ValidationFailed
from numberplane.kernel.settings import get_settings
from numberplane.numbers.models import PhoneNumberAgent
from numberplane.numbers.schemas import DIRECTIONS, PhoneNumberConfig, SipConfig

# Numberplane has no inbound-SMS endpoint yet, so it leaves each number's SMS webhook as the
# carrier has it rather than pointing messages at a URL that would answer 404.
SMS_WEBHOOKS = False
DEFAULT_CAPABILITIES = {"voice": True, "sms": False, "mms": False, "fax": False}

_SIMPLE_FIELDS = (
    "name",
    "language",
    "inbound_webhook_url",
    "inbound_webhook_timeout_ms",
    "inbound_webhook_attempts",
    "inbound_sms_webhook_url",
    "verified_caller_id",
    "callback_forwarding_number",
    "allowed_inbound_countries",
    "allowed_outbound_countries",
)
_OBJECT_FIELDS = ("voice", "fallback", "call_handler", "message_handler", "capabilities")


def wants_sms_webhook(capabilities: dict[str, Any] | None) -> bool:
    """Whether Numberplane points a number's SMS webhook at itself (buy, import, update, reconcile)."""
    return SMS_WEBHOOKS and bool((capabilities or {}).get("sms"))


def carrier_config(*, carrier: str, capabilities: dict[str, Any] | None, name: str | None) -> NumberConfig:
    """What Numberplane sets at the carrier for a number: its webhooks (under the public URL)
    and its friendly name. One rule for buy, import, update and reconcile."""
    return number_config_for(
        carrier=carrier,
        public_url=get_settings().public_url,
        sms=wants_sms_webhook(capabilities),
        friendly_name=name,
    )


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def _apply_sip(pn: Any, leg: str, value: SipConfig | None) -> None:
    password_attr = f"sip_{leg}_password_enc"
    if value is None:
        setattr(pn, f"sip_{leg}", None)
        setattr(pn, password_attr, None)
        return
    config = value.model_dump(mode="json", exclude_none=True, exclude={"password"})
    setattr(pn, f"sip_{leg}", config)
    if "password" in value.model_fields_set:
        secret = value.password.get_secret_value() if value.password is not None else None
        setattr(pn, password_attr, encrypt(secret) if secret else None)


def apply_config(pn: Any, data: PhoneNumberConfig, fields: Iterable[str]) -> None:
    """Write the sent settings onto the row. Agent bindings are handled by ``_set_bindings``."""
    for name in fields:
        value = getattr(data, name)
        if name in _SIMPLE_FIELDS:
            setattr(pn, name, value)
        elif name in _OBJECT_FIELDS:
            setattr(pn, name, _dump(value) if value is not None else None)
            if name == "capabilities" and value is None:
                pn.capabilities = dict(DEFAULT_CAPABILITIES)
        elif name in ("sip_inbound", "sip_outbound"):
            _apply_sip(pn, name.removeprefix("sip_"), value)
        elif name == "outbound":
            pn.outbound = bool(value)
        elif name == "emergency_address_id":
            pn.emergency_address_id = value
            pn.emergency_status = (
                None if value is None else ("active" if pn.carrier == "sandbox" else "pending")
            )
        elif name == "metadata":
            pn.meta = dict(value or {})
        elif name == "extras":
            merged = dict(pn.extras or {})
            if value is None:
                merged = {}
            else:
                for key, sub in value.items():
                    if sub is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = sub
            pn.extras = merged


async def check_agents(session: AsyncSession, org_id: str, data: PhoneNumberConfig, prefix: str = "") -> None:
    """Every bound agent must be the org's, and a pinned version must exist."""
    refs: list[tuple[str, int, str, int | None]] = []
    for direction in DIRECTIONS:
        for i, b in enumerate(getattr(data, f"{direction}_agents") or []):
            refs.append((f"{prefix}{direction}_agents[{i}]", i, b.agent_id, b.version))
    if not refs:
        return
    ids = sorted({r[2] for r in refs})
    rows = await session.execute(
        select(Agent.id, Agent.version).where(Agent.org_id == org_id, Agent.id.in_(ids))
    )
    latest = {row.id: row.version for row in rows}
    errors = []
    for field, _, agent_id, version in refs:
        if agent_id not in latest:
            errors.append(FieldError(f"{field}.agent_id", f"agent {agent_id} not found", "agent_not_found"))
        elif version is not None and version > latest[agent_id]:
            errors.append(
                FieldError(
                    f"{field}.version",
                    f"agent {agent_id} has no version {version} (latest is {latest[agent_id]})",
                    "agent_version_not_found",
                )
            )
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


def binding_rows(pn_id: str, data: PhoneNumberConfig, fields: Iterable[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for direction in DIRECTIONS:
        if f"{direction}_agents" not in fields:
            continue
        for position, b in enumerate(getattr(data, f"{direction}_agents") or []):
            rows.append(
                {
                    "phone_number_id": pn_id,
                    "direction": direction,
                    "agent_id": b.agent_id,
                    "version": b.version,
                    "weight": b.weight if b.weight is not None else 1.0,
                    "position": position,
                }
            )
    return rows


async def set_bindings(session: AsyncSession, pn_id: str, data: PhoneNumberConfig, fields: set[str]) -> None:
    directions = [d for d in DIRECTIONS if f"{d}_agents" in fields]
    if not directions:
        return
    await session.execute(
        delete(PhoneNumberAgent).where(
            PhoneNumberAgent.phone_number_id == pn_id, PhoneNumberAgent.direction.in_(directions)
        )
    )
    rows = binding_rows(pn_id, data, fields)
    if rows:
        await session.execute(insert(PhoneNumberAgent), rows)


def config_fields(data: PhoneNumberConfig) -> set[str]:
    return set(data.model_fields_set) & set(PhoneNumberConfig.model_fields)
