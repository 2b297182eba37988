"""Shared schema pieces: the strict base model and small value types used by several domains."""

from __future__ import annotations

import json
import locale
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

# Every text field has a bound: its own (names, prompts, URLs...) or this one. Free-form JSON
# (metadata, extras) is bounded by its serialised size (``BoundedJson``).
MAX_TEXT = 4096


class Model(BaseModel):
    """Unknown fields are an error, so a typo never silently does nothing; no text is unbounded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_max_length=MAX_TEXT)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


def _no_controls(value: str) -> None:
    """URLs and SIP URIs end up in carriers' XML and in request lines: no spaces or controls."""
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value):
        raise ValueError("must not contain spaces or control characters")


def _http_url(value: str) -> str:
    _no_controls(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    return value


def _ws_url(value: str) -> str:
    _no_controls(value)
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError("must be an absolute ws:// or wss:// URL")
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    return value


def _sip_uri(value: str) -> str:
    from numberplane.kernel.e164 import is_sip_uri

    _no_controls(value)
    if len(value) > 512:
        raise ValueError("must be at most 512 characters")
    if not is_sip_uri(value):
        raise ValueError("must be a SIP URI such as sip:agent@sip.example.com")
    return value


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: what storing and returning it costs."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def max_json(limit: int) -> AfterValidator:
    """A validator refusing a JSON value larger than ``limit`` bytes, naming both sizes."""

    def check(value: Any) -> Any:
        if value is not None and (size := json_size(value)) > limit:
            raise ValueError(f"must be at most {limit // 1024} KiB as JSON (it is {size:,} bytes)")
        return value

    return AfterValidator(check)


# A language as carriers take it (``<Say language="en-US">``): a known ISO 639 language, an
# optional script and an optional region (ISO 3166 or UN M.49): en, en-US, zh-Hans-CN, es-419.
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-(?:[A-Z]{2}|[0-9]{3}))?$"
_LANGUAGES = frozenset(
    code
    for alias in locale.locale_alias
    if (code := re.split(r"[_.@]", alias, maxsplit=1)[0]).isalpha() and 2 <= len(code) <= 3
)

# The scripts carriers' speech locales name (zh-Hans, sr-Latn...).
SCRIPTS = frozenset({"Arab", "Cyrl", "Deva", "Guru", "Hans", "Hant", "Latn"})


def _language_case(value: Any) -> Any:
    """``en-us`` reads as ``en-US``: language lower, script title, region upper case."""
    if not isinstance(value, str) or len(value) > 16:
        return value
    parts = value.replace("_", "-").split("-")
    return "-".join([parts[0].lower()] + [p.title() if len(p) == 4 else p.upper() for p in parts[1:]])


def _language(value: str) -> str:
    from numberplane.kernel.e164 import is_region

    if not re.fullmatch(LANGUAGE_PATTERN, value):
        raise ValueError(
            "must be a language tag such as en-US: a language (en), optionally a script (Hans) "
            "and a region (US, or 419)"
        )
    parts = value.split("-")
    if parts[0] not in _LANGUAGES:
        raise ValueError(f"{parts[0]!r} is not a known ISO 639 language code")
    if len(parts) > 1 and len(parts[1]) == 4 and parts[1] not in SCRIPTS:
        raise ValueError(f"{parts[1]!r} is not a script carriers use ({', '.join(sorted(SCRIPTS))})")
    region = parts[-1] if len(parts) > 1 and len(parts[-1]) == 2 else None
    if region is not None and not is_region(region):
        raise ValueError(f"{region!r} is not an ISO 3166-1 region")
    return value


Language = Annotated[str, BeforeValidator(_language_case), AfterValidator(_language), Field(max_length=16)]

METADATA_BYTES = 16 * 1024
Metadata = Annotated[dict[str, Any], max_json(METADATA_BYTES)]

HttpUrl = Annotated[str, AfterValidator(_http_url)]
WsUrl = Annotated[str, AfterValidator(_ws_url)]
SipUri = Annotated[str, AfterValidator(_sip_uri)]


def dump_set(model: BaseModel) -> dict[str, Any]:
    """Only the fields the caller actually sent: absent means unchanged, None means clear."""
    return {name: getattr(model, name) for name in model.model_fields_set}
