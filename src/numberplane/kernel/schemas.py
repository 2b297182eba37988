"""Shared schema pieces: the strict base model and small value types used by several domains."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict


class Model(BaseModel):
    """Unknown fields are an error, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    return value


def _ws_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError("must be an absolute ws:// or wss:// URL")
    return value


def _sip_uri(value: str) -> str:
    from numberplane.kernel.e164 import is_sip_uri

    if not is_sip_uri(value):
        raise ValueError("must be a SIP URI such as sip:agent@sip.example.com")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
WsUrl = Annotated[str, AfterValidator(_ws_url)]
SipUri = Annotated[str, AfterValidator(_sip_uri)]


def dump_set(model: BaseModel) -> dict[str, Any]:
    """Only the fields the caller actually sent: absent means unchanged, None means clear."""
    return {name: getattr(model, name) for name in model.model_fields_set}
