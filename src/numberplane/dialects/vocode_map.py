"""Vocode's number and agent shapes and their translation (pure functions).

Vocode embeds the number's inbound agent (prompt, actions, voice, webhook) in single-number
responses and gives only its id in list items. Everything in the embedded agent is read from
the stored agent (and the number's voice when the agent has none); sub-objects Vocode gives
ids to but Numberplane does not store as resources (the prompt, the voice, the webhook, actions
without an id) get ids derived from the agent's id, stable across reads. ``user_id`` is the
org's id. Agent settings with no core field (``interrupt_sensitivity``, ``conversation_speed``
and the like) are kept in the agent's ``metadata["vocode"]`` and read back from there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from numberplane.agents.schemas import AgentRead
from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT, METADATA_BYTES, max_json
from numberplane.numbers.schemas import PhoneNumberRead

DIALECT = "vocode"
DEFAULT_AGENT = "default"
DEFAULT_AGENT_NAME = "Vocode agent"

ACTIONS_IN = {
    "action_end_conversation": "end_conversation",
    "action_transfer_call": "transfer_call",
    "action_dtmf": "send_dtmf",
}
ACTIONS_OUT = {v: k for k, v in ACTIONS_IN.items()}
VOICE_TYPES = {
    "voice_azure": "azure",
    "voice_eleven_labs": "elevenlabs",
    "voice_rime": "rime",
    "voice_play_ht": "play_ht",
    "voice_vocode": "vocode",
}
VOICE_PROVIDERS = {v: k for k, v in VOICE_TYPES.items()} | {
    "eleven_labs": "voice_eleven_labs",
    "playht": "voice_play_ht",
}
PROVIDERS = ("twilio", "vonage")
# List sort_column -> the core's sortable column. Other columns: creation order.
SORT_COLUMNS = {
    "number": "phone_number",
    "label": "name",
    "id": "created_at",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
# AgentParams fields with no core meaning, kept in the agent's metadata["vocode"].
AGENT_EXTRAS = (
    "vector_database",
    "interrupt_sensitivity",
    "context_endpoint",
    "noise_suppression",
    "endpointing_sensitivity",
    "ivr_navigation_mode",
    "conversation_speed",
    "initial_message_delay",
    "openai_model_name_override",
    "ask_if_human_present_on_idle",
    "run_do_not_call_detection",
    "llm_fallback",
    "deepgram_keywords",
    "idle_time_seconds",
    "llm_temperature",
)

FIELD_NAMES = {
    "area_code": "area_code",
    "carrier_account_id": "telephony_account_connection",
    "phone_number": "phone_number",
    "name": "label",
    "inbound_agents": "inbound_agent",
    "outbound": "outbound_only",
}
AGENT_FIELD_NAMES = {
    "name": "inbound_agent.name",
    "prompt": "inbound_agent.prompt",
    "language": "inbound_agent.language",
    "actions": "inbound_agent.actions",
    "voice": "inbound_agent.voice",
    "initial_message": "inbound_agent.initial_message",
    "webhook": "inbound_agent.webhook",
}


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT)


# An inline agent carries its prompt: the core's prompt bound plus room for the rest.
AgentRef = Annotated[dict[str, Any], max_json(128 * 1024)] | str
SmallJson = Annotated[dict[str, Any], max_json(METADATA_BYTES)]


class BuyBody(_Body):
    area_code: str | int | None = None
    telephony_provider: str | None = None
    telephony_account_connection: str | None = None
    inbound_agent: AgentRef | None = None


class LinkBody(_Body):
    phone_number: str = Field(min_length=1, max_length=64)
    telephony_account_connection: str = Field(min_length=1, max_length=64)
    outbound_only: bool | None = None
    inbound_agent: AgentRef | None = None


class UpdateBody(_Body):
    """Each field may be Fern's ``Undefined`` (an empty object): that means "not sent"."""

    outbound_only: bool | SmallJson | None = None
    example_context: SmallJson | None = None
    label: str | SmallJson | None = None
    inbound_agent: AgentRef | None = None

    def given(self) -> set[str]:
        return {name for name in self.model_fields_set if not is_undefined(getattr(self, name))}


def is_undefined(value: Any) -> bool:
    return isinstance(value, dict) and not value


SortColumn = Literal["created_at", "number", "label"]


# ---------------------------------------------------------------------------------------------
# Agents: AgentParams / AgentUpdateParams -> core AgentCreate / AgentUpdate fields


def _voice_in(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, str):
        # Vocode voices are resources with ids; Numberplane has none, so a bare id is the TTS voice id.
        return {"voice_id": value}
    if not isinstance(value, dict):
        raise common.invalid(field, "must be a voice object or a voice id")
    kind = value.get("type")
    out: dict[str, Any]
    if kind == "voice_azure" or kind == "voice_base":
        out = {"voice_id": value.get("voice_name"), "pitch": value.get("pitch"), "rate": value.get("rate")}
    elif kind == "voice_eleven_labs":
        out = {
            "voice_id": value.get("voice_id"),
            "stability": value.get("stability"),
            "similarity": value.get("similarity_boost"),
        }
    elif kind == "voice_rime":
        out = {"voice_id": value.get("speaker"), "speed": value.get("speed_alpha")}
    elif kind == "voice_play_ht":
        out = {"voice_id": value.get("voice_id"), "speed": value.get("speed")}
    elif kind == "voice_vocode":
        out = {"voice_id": value.get("voice_id") or "joe"}
    else:
        raise common.invalid(f"{field}.type", f"unknown voice type {kind!r}")
    provider = VOICE_TYPES.get(str(kind))
    if provider:
        out["provider"] = provider
    return {k: v for k, v in out.items() if v is not None}


def _action_in(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise common.invalid(field, "action ids are not supported here: give the action inline")
    kind = ACTIONS_IN.get(str(value.get("type")))
    if kind is None:
        raise common.invalid(f"{field}.type", f"action type {value.get('type')!r} is not supported")
    config = dict(value.get("config") or {})
    out: dict[str, Any] = {"type": kind}
    keep = {k: config[k] for k in ("phone_number", "digits") if config.get(k) is not None}
    if keep:
        out["config"] = keep
    return out


def _webhook_in(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise common.invalid(field, "webhook ids are not supported here: give the webhook inline")
    out: dict[str, Any] = {"url": value.get("url"), "subscriptions": value.get("subscriptions") or []}
    if value.get("method"):
        out["method"] = str(value["method"]).upper()
    return out


def _prompt_in(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("content")
    # Prompts are Vocode resources; Numberplane has none, so a bare string is the prompt text.
    return value


def agent_fields(
    params: dict[str, Any], *, update: bool, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Core agent fields from Vocode AgentParams (create) or AgentUpdateParams (update: an
    Undefined ``{}`` field is not sent)."""
    out: dict[str, Any] = {}
    base = "inbound_agent"
    for name, value in params.items():
        if update and is_undefined(value):
            continue
        field = f"{base}.{name}"
        if name == "name":
            out["name"] = value
        elif name == "prompt":
            out["prompt"] = _prompt_in(value) if value is not None else None
        elif name == "language":
            out["language"] = value
        elif name == "initial_message":
            out["initial_message"] = value
        elif name == "voice":
            out["voice"] = _voice_in(value, field) if value is not None else None
        elif name == "actions":
            out["actions"] = (
                [_action_in(a, f"{field}[{i}]") for i, a in enumerate(value)] if value is not None else None
            )
        elif name == "webhook":
            out["webhook"] = _webhook_in(value, field) if value is not None else None
        elif name in AGENT_EXTRAS:
            meta = dict((metadata or {}).get(DIALECT) or {})
            if value is None:
                meta.pop(name, None)
            else:
                meta[name] = value
            metadata = {**(metadata or {}), DIALECT: meta}
            out["metadata"] = metadata
    if not update and not out.get("name"):
        out["name"] = DEFAULT_AGENT_NAME
    return out


# ---------------------------------------------------------------------------------------------
# Numbers


def area_code_in(value: str | int | None) -> str | None:
    return str(value) if value is not None and str(value).strip() else None


def provider_out(carrier: str) -> str:
    return carrier


def voice_out(voice: dict[str, Any] | None, owner: str, user_id: str) -> dict[str, Any]:
    """The Vocode voice object for a stored voice.

    Vocode documents a ``voice_base`` type, but vocode-api (0.0.48) cannot parse it, so a voice
    whose provider has no Vocode type is given in the identical ``voice_azure`` shape (its voice
    id as ``voice_name``). With no voice stored at all, Vocode's own default voice is reported.
    """
    v = voice or {}
    if not v.get("voice_id"):
        return {
            "id": common.derived_id(owner, "voice"),
            "user_id": user_id,
            "type": "voice_vocode",
            "voice_id": "joe",
        }
    kind = VOICE_PROVIDERS.get(str(v.get("provider") or "").lower(), "voice_azure")
    out: dict[str, Any] = {"id": common.derived_id(owner, "voice"), "user_id": user_id, "type": kind}
    if kind == "voice_azure":
        out["voice_name"] = v.get("voice_id")
        out["pitch"] = int(v["pitch"]) if v.get("pitch") is not None else None
        out["rate"] = int(v["rate"]) if v.get("rate") is not None else None
    elif kind == "voice_eleven_labs":
        out.update(
            voice_id=v.get("voice_id"), stability=v.get("stability"), similarity_boost=v.get("similarity")
        )
    elif kind == "voice_rime":
        out.update(speaker=v.get("voice_id"), speed_alpha=v.get("speed"))
    elif kind == "voice_play_ht":
        out.update(voice_id=v.get("voice_id"), speed=v.get("speed"))
    elif kind == "voice_vocode":
        out["voice_id"] = v.get("voice_id") or "joe"
    return out


def agent_out(agent: AgentRead, number: PhoneNumberRead | None = None) -> dict[str, Any]:
    user_id = agent.org_id
    actions = []
    for i, action in enumerate(agent.actions):
        config = dict(action.get("config") or {})
        actions.append(
            {
                "id": action.get("id") or common.derived_id(agent.id, "action", str(i)),
                "user_id": user_id,
                "type": ACTIONS_OUT.get(str(action.get("type")), str(action.get("type"))),
                "config": config,
            }
        )
    webhook = None
    if agent.webhook:
        webhook = {
            "id": common.derived_id(agent.id, "webhook"),
            "user_id": user_id,
            "subscriptions": list(agent.webhook.get("subscriptions") or []),
            "url": agent.webhook.get("url"),
            "method": agent.webhook.get("method") or "POST",
        }
    voice = agent.voice or (number.voice if number else None)
    out: dict[str, Any] = {
        "id": agent.id,
        "user_id": user_id,
        "name": agent.name,
        "prompt": {"id": common.derived_id(agent.id, "prompt"), "user_id": user_id, "content": agent.prompt},
        "language": common.primary_language(agent.language),
        "actions": actions,
        "voice": voice_out(voice, agent.id, user_id),
        "initial_message": agent.initial_message,
        "webhook": webhook,
    }
    for name, value in dict((agent.metadata or {}).get(DIALECT) or {}).items():
        if name in AGENT_EXTRAS:
            out[name] = value
    return out


def _base(number: PhoneNumberRead) -> dict[str, Any]:
    return {
        "id": number.id,
        "user_id": number.org_id,
        "active": number.status == "active",
        "label": number.name,
        "outbound_only": number.outbound,
        "example_context": common.extras_of(number, DIALECT).get("example_context"),
        "number": number.phone_number,
        "telephony_provider": provider_out(number.carrier),
    }


def phone_number(number: PhoneNumberRead, agents: dict[str, AgentRead]) -> dict[str, Any]:
    """The full PhoneNumber: the inbound agent embedded."""
    binding = common.primary_agent(number.inbound_agents)
    agent = agents.get(binding.agent_id) if binding else None
    out = _base(number)
    out["inbound_agent"] = agent_out(agent, number) if agent else None
    # The full account-connection object carries credentials; it is never returned.
    out["telephony_account_connection"] = None
    return out


def normalized(number: PhoneNumberRead) -> dict[str, Any]:
    """A list item: the inbound agent and the account connection by id."""
    binding = common.primary_agent(number.inbound_agents)
    out = _base(number)
    out["inbound_agent"] = binding.agent_id if binding else None
    out["telephony_account_connection"] = number.carrier_account_id
    return out


def update_request(body: UpdateBody, current: PhoneNumberRead) -> dict[str, Any]:
    """Number fields of ``POST /v1/numbers/update`` (the inbound agent is handled by the route)."""
    given = body.given()
    data: dict[str, Any] = {}
    if "label" in given:
        data["name"] = body.label
    if "outbound_only" in given:
        data["outbound"] = bool(body.outbound_only)
    if "example_context" in given:
        data["extras"] = common.extras_write(
            current.extras, DIALECT, {"example_context": body.example_context}
        )
    return data


def validation_detail(errors: list[Any]) -> list[dict[str, Any]]:
    """FastAPI's ``detail`` list from core field errors (``loc`` split back into parts)."""
    out = []
    for error in errors:
        loc: list[str | int] = ["body"]
        for part in str(error.field).replace("]", "").replace("[", ".").split("."):
            if part:
                loc.append(int(part) if part.isdigit() else part)
        out.append({"loc": loc, "msg": error.message, "type": error.code})
    return out
