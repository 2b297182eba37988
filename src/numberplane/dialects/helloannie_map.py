"""HelloAnnie's phone-number shapes and their translation to and from the core (pure functions).

HelloAnnie's PhoneNumber: ``id, createdAt, updatedAt, orgId, botId, number, name, language,
outbound, verifiedCallerId, callbackForwardingNumber, voiceId, speed, stability, similarity,
style``. Its ``voiceId`` is a preset stored as the number's voice ``{provider: "helloannie",
voice_id: "friendly_bright"}``; the tuning values come from the number's voice, else from its
bot's (the agent's) voice.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from numberplane.agents.schemas import AgentRead
from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import PhoneNumberRead

DIALECT = "helloannie"
VOICE_PROVIDER = "helloannie"

LanguageName = Literal["ENGLISH", "SPANISH", "FRENCH"]
VoiceName = Literal[
    "FRIENDLY_BRIGHT", "CALM_REASSURING", "POLISHED_PROFESSIONAL", "KIND_CURIOUS", "CONFIDENT_UPBEAT"
]
LANGUAGES: dict[str, str] = {"ENGLISH": "en", "SPANISH": "es", "FRENCH": "fr"}
LANGUAGES_OUT: dict[str, str] = {v: k for k, v in LANGUAGES.items()}
VOICES = ("FRIENDLY_BRIGHT", "CALM_REASSURING", "POLISHED_PROFESSIONAL", "KIND_CURIOUS", "CONFIDENT_UPBEAT")
NAME_PATTERN = r"^[A-Za-z0-9 .,_'()&#+/:;-]+$"
TUNING = ("speed", "stability", "similarity", "style")

# Core field -> HelloAnnie field, for validation errors raised while building core requests.
FIELD_NAMES = {
    "name": "name",
    "language": "language",
    "voice": "voiceId",
    "inbound_agents": "botId",
    "verified_caller_id": "verifiedCallerId",
    "callback_forwarding_number": "callbackForwardingNumber",
    "area_code": "areaCode",
    "phone_number": "number",
}


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", str_max_length=MAX_TEXT
    )


class CreateBody(_Body):
    org_id: str = Field(min_length=1, max_length=64)
    bot_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    language: LanguageName
    voice_id: VoiceName
    area_code: str | None = Field(default=None, pattern=r"^\d{3}$")
    verified_caller_id: str | None = None
    callback_forwarding_number: str | None = None


class UpdateBody(_Body):
    language: LanguageName | None = None
    voice_id: VoiceName | None = None
    verified_caller_id: str | None = None
    callback_forwarding_number: str | None = None


class AttachBody(_Body):
    bot_id: str = Field(min_length=1, max_length=64)


def voice_in(voice_id: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset onto the number's voice, keeping any tuning already stored."""
    return common.voice_write(current, {"provider": VOICE_PROVIDER, "voice_id": voice_id.lower()})


def voice_out(voice: dict[str, Any] | None) -> str | None:
    voice_id = str((voice or {}).get("voice_id") or "").upper()
    return voice_id if voice_id in VOICES else None


def buy_request(body: CreateBody) -> dict[str, Any]:
    """PhoneNumberBuy fields for ``POST /phone-numbers`` (a US local number, bot inbound)."""
    data: dict[str, Any] = {
        "country": "US",
        "number_type": "local",
        "name": body.name,
        "language": LANGUAGES[body.language],
        "voice": voice_in(body.voice_id),
        "inbound_agents": common.bindings(body.bot_id),
    }
    if body.area_code:
        data["area_code"] = body.area_code
    if body.verified_caller_id is not None:
        data["verified_caller_id"] = body.verified_caller_id
    if body.callback_forwarding_number is not None:
        data["callback_forwarding_number"] = body.callback_forwarding_number
    return data


def update_request(body: UpdateBody, current: PhoneNumberRead) -> dict[str, Any]:
    """PhoneNumberUpdate fields for ``PATCH /phone-numbers/{id}``: only what was sent."""
    sent = body.model_fields_set
    data: dict[str, Any] = {}
    if "language" in sent:
        data["language"] = LANGUAGES[body.language] if body.language else None
    if "voice_id" in sent and body.voice_id:
        data["voice"] = voice_in(body.voice_id, current.voice)
    if "verified_caller_id" in sent:
        data["verified_caller_id"] = body.verified_caller_id or None
    if "callback_forwarding_number" in sent:
        data["callback_forwarding_number"] = body.callback_forwarding_number or None
    return data


def attach_request(body: AttachBody) -> dict[str, Any]:
    return {"inbound_agents": common.bindings(body.bot_id)}


def phone_number(number: PhoneNumberRead, agents: dict[str, AgentRead]) -> dict[str, Any]:
    bot = common.primary_agent(number.inbound_agents) or common.primary_agent(number.outbound_agents)
    agent = agents.get(bot.agent_id) if bot else None
    voice = number.voice or {}
    agent_voice = (agent.voice if agent else None) or {}

    def tuning(name: str) -> Any:
        value = voice.get(name)
        return value if value is not None else agent_voice.get(name)

    language = number.language or (agent.language if agent else None)
    out: dict[str, Any] = {
        "id": number.id,
        "createdAt": common.iso(number.created_at),
        "updatedAt": common.iso(number.updated_at),
        "orgId": number.org_id,
        "botId": bot.agent_id if bot else None,
        "number": number.phone_number,
        "name": number.name,
        "language": LANGUAGES_OUT.get(common.primary_language(language) or ""),
        "outbound": number.outbound,
        "verifiedCallerId": number.verified_caller_id,
        "callbackForwardingNumber": number.callback_forwarding_number,
        "voiceId": voice_out(voice) or voice_out(agent_voice),
    }
    for name in TUNING:
        out[name] = tuning(name)
    return out


def envelope(data: Any, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "data": data}
    if message:
        body["message"] = message
    return body
