"""Translation helpers shared by every dialect (one place, not six copies).

Nothing here decides anything about numbers: these functions convert shapes (timestamps,
capability sets, agent bindings, SIP and voice settings in their read and write forms), build
core request models with vendor field names in their errors, and load the agents a page of
numbers refers to, in one query.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from numberplane.agents.schemas import AgentRead
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.deps import actor_for, get_db
from numberplane.kernel.errors import ErrorInfo, FieldError, NotFound, ValidationFailed, validation_errors
from numberplane.numbers.schemas import AgentBindingRead, NumberFilters, PhoneNumberRead, SipConfigRead
from numberplane.tenancy.auth import Principal, require_principal

M = TypeVar("M", bound=BaseModel)

# Ids a vendor requires on sub-objects Numberplane does not store as resources (a Vocode
# prompt, a webhook) are derived from the owner's id: stable across reads, unique per owner.
_NAMESPACE = uuid.UUID("6f1c1d1e-3b7a-5c2e-9a57-6e756d626572")


@dataclass(frozen=True)
class Ctx:
    """Everything a dialect route needs: the database, the acting key, and its org."""

    db: Database
    actor: Actor
    principal: Principal

    @property
    def org_id(self) -> str:
        return self.principal.org_id

    @property
    def key_id(self) -> str:
        return self.principal.key_id


def context(via: str) -> Callable[..., Awaitable[Ctx]]:
    """A FastAPI dependency: authenticate (any key presentation) and name the API surface."""

    async def dependency(request: Request, principal: Principal = Depends(require_principal)) -> Ctx:
        return Ctx(db=get_db(request), actor=actor_for(request, principal, via=via), principal=principal)

    return dependency


def build(model: type[M], data: Mapping[str, Any], *, names: Mapping[str, str] | None = None) -> M:
    """``model`` from ``data``; a validation failure names the vendor's fields, not the core's.

    Only the keys present in ``data`` count as set, so partial updates stay partial.
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ValidationFailed.of([_rename(e, names or {}) for e in validation_errors(exc)]) from None


def _rename(error: FieldError, names: Mapping[str, str]) -> FieldError:
    head, sep, rest = error.field.partition(".")
    bracket = head.find("[")
    if bracket > 0:
        head, rest, sep = head[:bracket], head[bracket:] + (sep + rest if sep else ""), ""
    vendor = names.get(head)
    if vendor is None:
        return error
    if rest.startswith("["):
        return FieldError(vendor + rest, error.message, error.code)
    return FieldError(vendor + (sep + rest if rest else ""), error.message, error.code)


def invalid(field: str, message: str, code: str = "invalid") -> ValidationFailed:
    return ValidationFailed.field(field, message, code)


# ---------------------------------------------------------------------------------------------
# Values


def iso(value: dt.datetime | None, *, millis: bool = False) -> str | None:
    """UTC ISO 8601 with a ``Z``: ``2023-11-07T05:31:56Z`` (or with milliseconds)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def epoch_ms(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def derived_id(*parts: str) -> str:
    """A stable UUID for a sub-object the vendor gives an id and Numberplane does not store."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def area_code_int(number: PhoneNumberRead) -> int | None:
    """NANP area codes as the integer Retell and Zudu use; None elsewhere."""
    if number.phone_number.startswith("+1") and number.area_code and number.area_code.isdigit():
        return int(number.area_code)
    return None


CAPABILITIES = ("voice", "sms", "mms", "fax")


def capability_list(caps: Mapping[str, bool] | None) -> list[str]:
    return [name for name in CAPABILITIES if (caps or {}).get(name)]


def capability_dict(names: Iterable[str]) -> dict[str, bool]:
    chosen = {n.lower() for n in names}
    return {name: name in chosen for name in CAPABILITIES}


def primary_language(tag: str | None) -> str | None:
    """``en`` for ``en-US``: the part vendors with coarse language enums care about."""
    if not tag:
        return None
    return tag.split("-", 1)[0].lower()


def same_org(value: str | None, principal: Principal) -> bool:
    return bool(value) and str(value).strip().lower() == principal.org_id.lower()


# ---------------------------------------------------------------------------------------------
# Agents


def primary_agent(bindings: list[AgentBindingRead]) -> AgentBindingRead | None:
    """The agent a single-agent API shows: the heaviest binding, the first listed on a tie."""
    best: AgentBindingRead | None = None
    for binding in bindings:
        if best is None or binding.weight > best.weight:
            best = binding
    return best


def bindings(agent_id: str | None, version: int | None = None) -> list[dict[str, Any]]:
    """A single-agent API's agent as a core binding list ([] clears)."""
    if not agent_id:
        return []
    binding: dict[str, Any] = {"agent_id": agent_id}
    if version is not None:
        binding["version"] = version
    return [binding]


def agent_ids(numbers: Iterable[PhoneNumberRead]) -> list[str]:
    seen: dict[str, None] = {}
    for number in numbers:
        for group in (
            number.inbound_agents,
            number.outbound_agents,
            number.inbound_sms_agents,
            number.outbound_sms_agents,
        ):
            for binding in group:
                seen.setdefault(binding.agent_id, None)
    return list(seen)


async def agents_for(ctx: Ctx, numbers: Iterable[PhoneNumberRead]) -> dict[str, AgentRead]:
    """Every agent these numbers bind, in one query."""
    from numberplane.agents import service as agents

    ids = agent_ids(numbers)
    if not ids:
        return {}
    return await agents.get_agents(db=ctx.db, org_id=ctx.org_id, ids=ids)


def effective_version(binding: AgentBindingRead | None, agents: Mapping[str, AgentRead]) -> int | None:
    """A pinned version, or (following latest) the agent's current version."""
    if binding is None:
        return None
    if binding.version is not None:
        return binding.version
    agent = agents.get(binding.agent_id)
    return agent.version if agent else None


# ---------------------------------------------------------------------------------------------
# Read form -> write form (for read-modify-write of whole-object settings)


def sip_write(current: SipConfigRead | None, updates: Mapping[str, Any]) -> dict[str, Any]:
    """A SIP config to send as an update: the stored one, with ``updates`` laid over it.

    The stored password is never read back; when ``updates`` has none the field is left out,
    and the core keeps the stored one.
    """
    base: dict[str, Any] = {}
    if current is not None:
        base = current.model_dump(exclude={"password_set"}, exclude_none=True)
    for key, value in updates.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def voice_write(current: Mapping[str, Any] | None, updates: Mapping[str, Any]) -> dict[str, Any]:
    base = {k: v for k, v in (current or {}).items() if v is not None}
    for key, value in updates.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def extras_write(
    current: Mapping[str, Any] | None, dialect: str, updates: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The number's whole ``extras`` with this dialect's entry updated (None removes a key)."""
    out: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (current or {}).items() if isinstance(v, dict)}
    mine = out.get(dialect, {})
    for key, value in updates.items():
        if value is None:
            mine.pop(key, None)
        else:
            mine[key] = value
    out[dialect] = mine
    return out


def extras_of(number: PhoneNumberRead, dialect: str) -> dict[str, Any]:
    value = (number.extras or {}).get(dialect)
    return dict(value) if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# Reading numbers

GONE = ("released", "failed")


def held(number: PhoneNumberRead) -> PhoneNumberRead:
    """Vendor APIs have no released numbers: one that is gone reads as not found there."""
    if number.status in GONE:
        raise NotFound(f"phone number {number.phone_number} not found", code="phone_number_not_found")
    return number


async def get_held(ctx: Ctx, ref: str) -> PhoneNumberRead:
    from numberplane.numbers import service as numbers

    return held(await numbers.get_number(db=ctx.db, org_id=ctx.org_id, ref=ref))


async def all_numbers(
    ctx: Ctx, filters: NumberFilters | None = None, *, order: str = "desc", cap: int = 100_000
) -> list[PhoneNumberRead]:
    """Every number for an API with no paging (HelloAnnie's list, Retell's legacy list)."""
    from numberplane.numbers import service as numbers

    out: list[PhoneNumberRead] = []
    cursor: str | None = None
    while len(out) < cap:
        page = await numbers.list_numbers(
            db=ctx.db, org_id=ctx.org_id, filters=filters, limit=1000, cursor=cursor, order=order
        )
        out.extend(page.data)
        if not page.has_more or not page.next_cursor:
            break
        cursor = page.next_cursor
    return out[:cap]


# ---------------------------------------------------------------------------------------------
# Errors


def is_not_found(info: ErrorInfo) -> bool:
    """A missing (or foreign) resource, including an agent id named in a body."""
    if info.status == 404:
        return True
    return any(e.code.endswith("not_found") for e in info.errors)


def rest_status(info: ErrorInfo) -> int:
    """The status a plain REST vendor API uses: not-found (including a missing agent named in a
    body) is 404, and invalid input is 400 rather than FastAPI's 422."""
    if is_not_found(info):
        return 404
    return 400 if info.status == 422 else info.status


def message_of(info: ErrorInfo) -> str:
    return info.message or info.title


def is_validation(info: ErrorInfo) -> bool:
    return info.status in (400, 422) and (info.code == "validation_failed" or bool(info.errors))
