"""Every parse and format of a phone number, through ``phonenumbers``.

Formats break routing silently in peer systems ("+" or not, national or E.164, ``sip:`` URIs).
Here a number is parsed once at the edge, stored as E.164, and every inbound form that
carriers send (``+14155550100``, ``14155550100``, ``(415) 555-0100`` with a country hint,
``sip:+14155550100@host;user=phone``, ``tel:+1-415-555-0100``) resolves to the same string.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal, NamedTuple, get_args
from urllib.parse import unquote

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumberFormat,
    PhoneNumberType,
    phonenumberutil,
)

# phonenumbers compiles its metadata's patterns through the re module's own cache (512 entries),
# which the patterns of a few regions' numbers overflow, so they are compiled again and again.
# Its own cache keeps them all (bounded by the metadata). Measured on 20,000 distinct numbers
# each (parse with the validity check): US E.164 29.9 -> 26.0 us, UK national 84 -> 66 us,
# eight countries mixed 24.5 -> 22.9 us. Set here, where every parse goes through (a release of
# phonenumbers without the switch parses as before).
_enable_pattern_cache = getattr(phonenumbers, "enable_pattern_cache", None)
if _enable_pattern_cache is not None:
    _enable_pattern_cache()

_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "local",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "local",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.UAN: "national",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
NumberType = Literal[
    "local",
    "mobile",
    "toll_free",
    "national",
    "voip",
    "shared_cost",
    "premium_rate",
    "personal",
    "pager",
    "voicemail",
    "unknown",
]
NUMBER_TYPES: tuple[str, ...] = get_args(NumberType)

_URI_USER = re.compile(r"^(?:sips?|tel):([^@;?]+)", re.IGNORECASE)
_MAX_INPUT = 64


class InvalidPhoneNumber(ValueError):
    """Raised with the reason a value is not a usable phone number."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason


class ParsedNumber(NamedTuple):
    """A tuple of strings: the collector stops tracking it, so a large parse cache costs no GC time."""

    e164: str
    country: str | None
    area_code: str | None
    number_type: str
    pretty: str
    national: str


def _as_text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        raise InvalidPhoneNumber(value, "must be a phone number string")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidPhoneNumber(value, "must be a phone number string")
    text = value.strip()
    if not text:
        raise InvalidPhoneNumber(value, "must not be empty")
    if len(text) > _MAX_INPUT:
        raise InvalidPhoneNumber(value, f"is longer than {_MAX_INPUT} characters")
    return text


def _strip_uri(text: str) -> str:
    match = _URI_USER.match(text)
    if match:
        return unquote(match.group(1))
    return text


def _candidates(text: str, country_hint: str | None) -> list[tuple[str, str | None]]:
    """Ways to read ``text``: international if it says so; else national in the hint's country
    (US when none is given); then, for bare digits, as if a '+' had been dropped (Vonage, SIP)."""
    digits = re.sub(r"[\s().\-]", "", text)
    if text.startswith("+"):
        return [(text, None)]
    out: list[tuple[str, str | None]] = []
    if text.startswith("00") and digits.isdigit():
        out.append(("+" + digits[2:], None))
    out.append((text, (country_hint or "US").upper()))
    if digits.isdigit() and len(digits) >= 8:
        out.append(("+" + digits, None))
    return out


@lru_cache(maxsize=65536)
def _parse_cached(text: str, country_hint: str | None) -> ParsedNumber:
    last_reason = "is not a valid phone number"
    for candidate, region in _candidates(text, country_hint):
        try:
            num = phonenumbers.parse(candidate, region)
        except NumberParseException as exc:
            last_reason = f"is not a phone number ({exc._msg})" if hasattr(exc, "_msg") else last_reason
            continue
        # One region lookup serves both the validity check and the description (NANP numbers
        # share +1 across ~25 regions, so each lookup is the expensive part of a parse).
        number_region = phonenumbers.region_code_for_number(num)
        if number_region is None or not phonenumbers.is_valid_number_for_region(num, number_region):
            last_reason = "is not a valid phone number for its country"
            continue
        return _describe(num, number_region)
    raise InvalidPhoneNumber(text, last_reason)


def _number_type(num: phonenumbers.PhoneNumber, region: str) -> int:
    """``phonenumbers.number_type`` without repeating the region lookup we already did."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(num.country_code or 0, region)
    helper = getattr(phonenumberutil, "_number_type_helper", None)
    if metadata is None or helper is None:
        return int(phonenumbers.number_type(num))
    return int(helper(phonenumbers.national_significant_number(num), metadata))


def _describe(num: phonenumbers.PhoneNumber, region: str) -> ParsedNumber:
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    national_significant = phonenumbers.national_significant_number(num)
    area: str | None
    if num.country_code == 1:
        area = national_significant[:3]
        pretty = f"+1 ({area}) {national_significant[3:6]}-{national_significant[6:]}"
        national = f"({area}) {national_significant[3:6]}-{national_significant[6:]}"
    else:
        ndc_len = phonenumbers.length_of_national_destination_code(num)
        area = national_significant[:ndc_len] if ndc_len > 0 else None
        pretty = phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL)
        national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
    kind = _TYPE_NAMES.get(_number_type(num, region), "unknown")
    return ParsedNumber(
        e164=e164,
        country=region if region != "ZZ" else None,
        area_code=area,
        number_type=kind,
        pretty=pretty,
        national=national,
    )


def parse(value: object, *, country_hint: str | None = None) -> ParsedNumber:
    """Parse a number as a user typed it. Raises InvalidPhoneNumber with the reason."""
    text = _strip_uri(_as_text(value))
    return _parse_cached(text, country_hint.upper() if country_hint else None)


def to_e164(value: object, *, country_hint: str | None = None) -> str:
    return parse(value, country_hint=country_hint).e164


def normalize_address(value: str | None, *, country_hint: str | None = None) -> str | None:
    """The E.164 behind any address a carrier sends (To/From, SIP or tel URI), or None.

    Used on the data plane: never raises, because an odd caller ID must not fail a call. An
    address already written in E.164 (what carriers send) is read by phonenumbers without the
    validity check a typed number gets (``_address``): the check costs a region lookup, 50-100 us
    per new number, and a carrier's metadata is newer than ours, so a valid number in a freshly
    assigned range must not lose its caller ID. So is the E.164 user part of a SIP or tel URI
    (``sip:+14155550100@pbx;user=phone``, as SIP platforms send it). Anything else is parsed in
    full (``parse``).
    """
    if not value:
        return None
    if _E164_SHAPE.fullmatch(value):
        return _address(value)
    user = _strip_uri(value.strip()) if len(value) <= _MAX_INPUT else ""
    if _E164_SHAPE.fullmatch(user):
        return _address(user)
    try:
        return parse(value, country_hint=country_hint).e164
    except InvalidPhoneNumber:
        return None


_E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")


@lru_cache(maxsize=65536)
def _address(text: str) -> str | None:
    """An E.164-shaped address as phonenumbers formats it (the country code read, a national
    prefix dialled after it dropped), if its length is possible for its country; else None."""
    num = _split_e164(text)
    if num is None:
        try:
            num = phonenumbers.parse(text, None)
        except NumberParseException:
            return None
    if not phonenumbers.is_possible_number(num):
        return None
    return str(phonenumbers.format_number(num, PhoneNumberFormat.E164))


def _split_e164(text: str) -> phonenumbers.PhoneNumber | None:
    """What ``phonenumbers.parse(text, None)`` returns for an E.164-shaped ``text`` where that
    parse only splits it: its country code one phonenumbers knows, its national number with no
    leading zero and not starting with anything the country's metadata reads as a national
    prefix (where the parse may strip one). Otherwise None, and the caller parses in full.

    Why: carriers send every caller as E.164, and most calls come from a caller this process has
    not seen lately. The full parse is pure Python, ~12 us a number (most of it normalising each
    character as a Unicode digit): 21 of a 52 us warm decision in process, 33 us of server CPU
    a decision under wrk (bench/routing.py, "new callers"). This costs ~2 us; whether the number
    is possible, and its E.164 form, are still phonenumbers' answers (``_address``); a property
    test holds this equal to the full parse for every country code."""
    digits = text[1:]
    for size in (1, 2, 3):
        code = digits[:size]
        if code in _CALLING_CODES:
            break
    else:
        return None
    prefix = _NATIONAL_PREFIX.get(code)
    if prefix is None:
        prefix = _NATIONAL_PREFIX[code] = _national_prefix(int(code))
    national = digits[size:]
    if prefix is False or national[:1] == "0" or (prefix is not True and prefix.match(national)):
        return None
    return phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national))


def _national_prefix(code: int) -> re.Pattern[str] | bool:
    """The pattern phonenumbers reads a national prefix with for calling code ``code``; True
    where the country has none; False where its metadata cannot be had (the full parse then)."""
    region = phonenumbers.region_code_for_country_code(code)
    try:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    except Exception:  # metadata that cannot be loaded: leave this code to the full parse
        return False
    if metadata is None:
        return False
    pattern = getattr(metadata, "national_prefix_for_parsing", None)
    return re.compile(pattern) if pattern else True


# Every calling code phonenumbers knows, as text; their national-prefix patterns, read on first use
# (bounded by the codes: ~215).
_CALLING_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_NATIONAL_PREFIX: dict[str, re.Pattern[str] | bool] = {}


def pretty(e164: str) -> str:
    try:
        return parse(e164).pretty
    except InvalidPhoneNumber:
        return e164


def country_of(e164: str | None) -> str | None:
    if not e164:
        return None
    try:
        return parse(e164).country
    except InvalidPhoneNumber:
        return None


def is_sip_uri(value: str) -> bool:
    return bool(re.match(r"^sips?:[^@\s]+@[^\s]+$", value.strip(), re.IGNORECASE))


def is_region(code: str) -> bool:
    """An ISO 3166-1 alpha-2 region with phone numbering (as phonenumbers knows them)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS
