"""Twilio's IncomingPhoneNumber and AvailablePhoneNumber shapes and their translation (pure).

``sid`` is ``PN`` + the number id's 32 hex digits, so it is stable and leads straight back to the
number. ``account_sid`` in a resource is ``AC`` + the org id's 32 hex digits (Twilio's pattern
for an account); the path's ``{AccountSid}`` is the API key's id, which is what the ``twilio``
client puts there. Voice fields are the number's ``call_handler`` (``laml_webhooks``: the
customer's own TwiML URL), SMS fields its ``message_handler``, ``FriendlyName`` its name,
``EmergencyAddressSid`` its emergency address; Twilio settings with no core field are kept in
``extras["twilio"]`` and read back.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

import phonenumbers
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from numberplane.dialects import common
from numberplane.kernel.schemas import MAX_TEXT
from numberplane.numbers.schemas import PhoneNumberRead

DIALECT = "twilio"
API_VERSION = "2010-04-01"
MORE_INFO = "https://www.twilio.com/docs/errors/"
KINDS = {"Local": "local", "TollFree": "toll_free", "Mobile": "mobile"}
TYPES_OUT = {"local": "local", "toll_free": "toll-free", "mobile": "mobile"}
_SID = re.compile(r"^PN[0-9a-fA-F]{32}$")

# Error codes (https://www.twilio.com/docs/errors/<code>).
AUTHENTICATE = 20003
NOT_FOUND = 20404
INVALID_PARAMETER = 20001
INVALID_FRIENDLY_NAME = 20002
INVALID_PHONE_NUMBER = 21421
NUMBER_NOT_AVAILABLE = 21422
INVALID_AREA_CODE = 21451
NO_NUMBERS_FOUND = 21452
FALLBACK_WITHOUT_URL = 21405
INVALID_URL = 21205
FIELD_CODES = {
    "PhoneNumber": INVALID_PHONE_NUMBER,
    "AreaCode": INVALID_AREA_CODE,
    "FriendlyName": INVALID_FRIENDLY_NAME,
    "VoiceUrl": INVALID_URL,
    "VoiceFallbackUrl": INVALID_URL,
    "StatusCallback": INVALID_URL,
    "SmsUrl": INVALID_URL,
    "SmsFallbackUrl": INVALID_URL,
}

# Core field -> Twilio parameter, for errors the core raises.
FIELD_NAMES = {
    "phone_number": "PhoneNumber",
    "area_code": "AreaCode",
    "country": "CountryCode",
    "name": "FriendlyName",
    "call_handler": "VoiceUrl",
    "message_handler": "SmsUrl",
    "emergency_address_id": "EmergencyAddressSid",
    "carrier_account_id": "PhoneNumber",
}


def sid_of(number_id: str) -> str:
    return "PN" + uuid.UUID(number_id).hex


def id_of(sid: str) -> str | None:
    """The number id a ``PN`` sid stands for; None for anything that is not one."""
    if not _SID.match(sid):
        return None
    return str(uuid.UUID(hex=sid[2:]))


def account_sid_of(org_id: str) -> str:
    try:
        return "AC" + uuid.UUID(org_id).hex
    except ValueError:
        return "AC" + org_id.replace("-", "")[:32].ljust(32, "0")


def rfc2822(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return email.utils.format_datetime(value.astimezone(dt.UTC))


# ---------------------------------------------------------------------------------------------
# Requests: form fields with Twilio's names. "" clears a field, as at Twilio.


def _url(value: str) -> str:
    if value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2048:
        raise ValueError("must be an absolute http(s) URL")
    return value


def _sid_check(prefix: str) -> Any:
    pattern = re.compile(rf"^{prefix}[0-9a-fA-F]{{32}}$")

    def check(value: str) -> str:
        if value and not pattern.match(value):
            raise ValueError(f"must be a {prefix} sid ({prefix} + 32 hex characters)")
        return value

    return AfterValidator(check)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _bool(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Url = Annotated[str, AfterValidator(_url)]
HttpMethod = Annotated[Literal["GET", "POST"], BeforeValidator(_upper)]
Bool = Annotated[bool, BeforeValidator(_bool)]


class _Form(BaseModel):
    # Twilio ignores parameters it does not know; so does this API.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, str_max_length=MAX_TEXT)

    ApiVersion: Literal["2010-04-01", "2008-08-01"] | None = None
    FriendlyName: str | None = Field(default=None, max_length=64)
    VoiceUrl: Url | None = None
    VoiceMethod: HttpMethod | None = None
    VoiceFallbackUrl: Url | None = None
    VoiceFallbackMethod: HttpMethod | None = None
    StatusCallback: Url | None = None
    StatusCallbackMethod: HttpMethod | None = None
    VoiceCallerIdLookup: Bool | None = None
    VoiceApplicationSid: Annotated[str, _sid_check("AP")] | None = None
    VoiceReceiveMode: Literal["voice", "fax"] | None = None
    SmsUrl: Url | None = None
    SmsMethod: HttpMethod | None = None
    SmsFallbackUrl: Url | None = None
    SmsFallbackMethod: HttpMethod | None = None
    SmsApplicationSid: Annotated[str, _sid_check("AP")] | None = None
    TrunkSid: Annotated[str, _sid_check("TK")] | None = None
    EmergencyStatus: Literal["Active", "Inactive"] | None = None
    EmergencyAddressSid: Annotated[str, _sid_check("AD")] | None = None
    AddressSid: Annotated[str, _sid_check("AD")] | None = None
    IdentitySid: Annotated[str, _sid_check("RI")] | None = None
    BundleSid: Annotated[str, _sid_check("BU")] | None = None


class BuyForm(_Form):
    PhoneNumber: str | None = Field(default=None, max_length=64)
    AreaCode: str | None = Field(default=None, pattern=r"^\d{3}$")


class UpdateForm(_Form):
    AccountSid: str | None = Field(default=None, max_length=64)


# Twilio parameter -> core CallHandler / MessageHandler field.
VOICE_FIELDS = {
    "VoiceUrl": "request_url",
    "VoiceMethod": "request_method",
    "VoiceFallbackUrl": "fallback_url",
    "VoiceFallbackMethod": "fallback_method",
    "StatusCallback": "status_callback_url",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceReceiveMode": "receive_mode",
}
SMS_FIELDS = {
    "SmsUrl": "request_url",
    "SmsMethod": "request_method",
    "SmsFallbackUrl": "fallback_url",
    "SmsFallbackMethod": "fallback_method",
}
# Twilio parameter -> key in extras["twilio"] (no core meaning; kept and read back).
EXTRA_FIELDS = {
    "ApiVersion": "api_version",
    "VoiceCallerIdLookup": "voice_caller_id_lookup",
    "VoiceApplicationSid": "voice_application_sid",
    "SmsApplicationSid": "sms_application_sid",
    "TrunkSid": "trunk_sid",
    "EmergencyStatus": "emergency_status",
    "AddressSid": "address_sid",
    "IdentitySid": "identity_sid",
    "BundleSid": "bundle_sid",
}


def _lay_over(base: dict[str, Any], sent: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    for name, core in fields.items():
        if name not in sent:
            continue
        value = sent[name]
        if value in (None, ""):
            base.pop(core, None)
        else:
            base[core] = value
    return base


def call_handler_write(current: dict[str, Any] | None, sent: dict[str, Any]) -> dict[str, Any] | None:
    """The number's call handler with the Twilio voice fields laid over it.

    A VoiceUrl makes it ``laml_webhooks`` (the customer's TwiML); clearing it returns the number
    to its agents. Twilio refuses a VoiceFallbackUrl without a VoiceUrl (21405), so does this.
    """
    base = {k: v for k, v in (current or {}).items() if v is not None}
    base = _lay_over(base, sent, VOICE_FIELDS)
    if "VoiceUrl" in sent:
        base["type"] = "laml_webhooks" if sent["VoiceUrl"] else "agents"
    elif base.get("type") == "laml_webhooks" and not base.get("request_url"):
        base["type"] = "agents"
    if base.get("fallback_url") and not base.get("request_url"):
        raise common.invalid(
            "VoiceFallbackUrl", "Cannot set VoiceFallbackUrl without setting Url", str(FALLBACK_WITHOUT_URL)
        )
    meaningful = {k for k in base if k != "type"}
    if not meaningful and base.get("type", "agents") == "agents":
        return None
    base.setdefault("type", "agents")
    return base


def message_handler_write(current: dict[str, Any] | None, sent: dict[str, Any]) -> dict[str, Any] | None:
    """The message handler with the Twilio SMS fields laid over it: an SmsUrl makes it
    ``laml_webhooks``; with no URL left, a ``laml_webhooks`` handler is removed."""
    base = {k: v for k, v in (current or {}).items() if v is not None}
    base = _lay_over(base, sent, SMS_FIELDS)
    if sent.get("SmsUrl"):
        base["type"] = "laml_webhooks"
    if base.get("type") in (None, "laml_webhooks") and not base.get("request_url"):
        return None
    return base


def settings(form: _Form, current: PhoneNumberRead | None) -> dict[str, Any]:
    """Core PhoneNumberConfig fields for the parameters sent (buy or update)."""
    sent = {name: getattr(form, name) for name in form.model_fields_set}
    data: dict[str, Any] = {}
    if "FriendlyName" in sent:
        data["name"] = sent["FriendlyName"] or None
    if VOICE_FIELDS.keys() & sent.keys():
        data["call_handler"] = call_handler_write(current.call_handler if current else None, sent)
    if SMS_FIELDS.keys() & sent.keys():
        data["message_handler"] = message_handler_write(current.message_handler if current else None, sent)
    if "EmergencyAddressSid" in sent:
        data["emergency_address_id"] = sent["EmergencyAddressSid"] or None
    extras = {EXTRA_FIELDS[k]: (v if v != "" else None) for k, v in sent.items() if k in EXTRA_FIELDS}
    if extras:
        data["extras"] = common.extras_write(current.extras if current else None, DIALECT, extras)
    return data


def buy_request(form: BuyForm, number_type: str, country: str = "US") -> dict[str, Any]:
    if not form.PhoneNumber and not form.AreaCode:
        raise common.invalid("PhoneNumber", "A 'PhoneNumber' or 'AreaCode' is required.")
    data: dict[str, Any] = {"country": country, "number_type": number_type, **settings(form, None)}
    if form.PhoneNumber:
        data["phone_number"] = form.PhoneNumber
    else:
        data["area_code"] = form.AreaCode
    return data


# ---------------------------------------------------------------------------------------------
# Responses


def friendly_default(e164_number: str) -> str:
    """Twilio's default FriendlyName: the number in its national format."""
    try:
        parsed = phonenumbers.parse(e164_number, None)
    except phonenumbers.NumberParseException:
        return e164_number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def instance_uri(key_id: str, number_id: str) -> str:
    return f"/{API_VERSION}/Accounts/{key_id}/IncomingPhoneNumbers/{sid_of(number_id)}.json"


def _sid_or_none(value: Any, prefix: str) -> str | None:
    text = str(value) if value else ""
    return text if re.fullmatch(rf"{prefix}[0-9a-fA-F]{{32}}", text) else None


def emergency_address_status(number: PhoneNumberRead) -> str:
    if not number.emergency_address_id:
        return "unregistered"
    return {"active": "registered", "failed": "registration-failure"}.get(
        str(number.emergency_status), "pending-registration"
    )


def incoming_phone_number(number: PhoneNumberRead, key_id: str) -> dict[str, Any]:
    call = number.call_handler or {}
    laml = call.get("type") == "laml_webhooks"
    message = number.message_handler or {}
    sms = message.get("type") == "laml_webhooks"
    extras = common.extras_of(number, DIALECT)
    caps = number.capabilities or {}
    return {
        "account_sid": account_sid_of(number.org_id),
        "address_sid": _sid_or_none(extras.get("address_sid"), "AD"),
        "address_requirements": "none",
        "api_version": extras.get("api_version") or API_VERSION,
        "beta": False,
        "capabilities": {name: bool(caps.get(name)) for name in ("voice", "sms", "mms", "fax")},
        "date_created": rfc2822(number.created_at),
        "date_updated": rfc2822(number.updated_at),
        "friendly_name": number.name or friendly_default(number.phone_number),
        "identity_sid": _sid_or_none(extras.get("identity_sid"), "RI"),
        "phone_number": number.phone_number,
        "origin": "twilio" if number.origin == "purchased" else "hosted",
        "sid": sid_of(number.id),
        "sms_application_sid": _sid_or_none(extras.get("sms_application_sid"), "AP"),
        "sms_fallback_method": (message.get("fallback_method") if sms else None) or "POST",
        "sms_fallback_url": message.get("fallback_url") if sms else None,
        "sms_method": (message.get("request_method") if sms else None) or "POST",
        "sms_url": message.get("request_url") if sms else None,
        "status_callback": call.get("status_callback_url"),
        "status_callback_method": call.get("status_callback_method") or "POST",
        "trunk_sid": _sid_or_none(extras.get("trunk_sid"), "TK"),
        "uri": instance_uri(key_id, number.id),
        "voice_receive_mode": call.get("receive_mode") or "voice",
        "voice_application_sid": _sid_or_none(extras.get("voice_application_sid"), "AP"),
        "voice_caller_id_lookup": bool(extras.get("voice_caller_id_lookup", False)),
        "voice_fallback_method": (call.get("fallback_method") if laml else None) or "POST",
        "voice_fallback_url": call.get("fallback_url") if laml else None,
        "voice_method": (call.get("request_method") if laml else None) or "POST",
        "voice_url": call.get("request_url") if laml else None,
        "emergency_status": extras.get("emergency_status")
        or ("Active" if number.emergency_address_id else "Inactive"),
        "emergency_address_sid": _sid_or_none(number.emergency_address_id, "AD"),
        "emergency_address_status": emergency_address_status(number),
        "bundle_sid": _sid_or_none(extras.get("bundle_sid"), "BU"),
        "status": "in-use" if number.status == "active" else number.status,
        "type": TYPES_OUT.get(number.number_type, number.number_type),
    }


def available_number(item: Any) -> dict[str, Any]:
    """An offered number (``phone_number``, ``country``, ``locality``, ``region``, ``capabilities``)."""
    return {
        "friendly_name": friendly_default(item.phone_number),
        "phone_number": item.phone_number,
        "lata": None,
        "locality": item.locality,
        "rate_center": None,
        "latitude": None,
        "longitude": None,
        "region": item.region,
        "postal_code": None,
        "iso_country": item.country,
        "address_requirements": "none",
        "beta": False,
        "capabilities": {name: bool(item.capabilities.get(name)) for name in ("voice", "sms", "mms", "fax")},
    }


def contains_pattern(value: str) -> tuple[str | None, re.Pattern[str]]:
    """Twilio's ``Contains`` (digits, letters as on a keypad, ``*`` for any one digit): the longest
    run of digits (for the carrier's search) and the whole pattern as a regex over the digits."""
    text = phonenumbers.convert_alpha_characters_in_number(value.strip())
    if not re.fullmatch(r"[0-9*]{2,16}", text):
        raise common.invalid("Contains", "must be 2 to 16 digits, letters or '*'")
    runs = sorted(re.findall(r"[0-9]+", text), key=len, reverse=True)
    regex = re.compile(text.replace("*", "[0-9]"))
    return (runs[0][:10] if runs else None), regex


def number_pattern(value: str) -> tuple[str | None, re.Pattern[str] | None]:
    """The list filter ``PhoneNumber``: digits anywhere in the number, ``*`` for any one digit."""
    text = "".join(ch for ch in value if ch.isdigit() or ch == "*")[:20]
    if "*" not in text:
        return (text or None), None
    runs = sorted(re.findall(r"[0-9]+", text), key=len, reverse=True)
    return (runs[0] if runs else None), re.compile(text.replace("*", "[0-9]"))


def page_uri(path: str, params: dict[str, Any]) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"{MORE_INFO}{code}", "status": status}
