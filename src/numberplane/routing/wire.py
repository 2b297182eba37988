"""The data plane's framework-free request and answer: what the carrier endpoints (``routing.handlers``),
their signature checks (``routing.carrier_auth``) and both servers' paths (``routing.views``,
``routing.fastpath``) pass between them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Incoming", "Outgoing"]


@dataclass(slots=True)
class Incoming:
    router: Any  # the app's ``routing.service.Router`` (its caches, its settings)
    method: str
    path: str  # decoded: what endpoints are matched on
    raw_path: str  # as sent (percent-encoding kept): what signatures cover
    query: str  # raw query string
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(slots=True)
class Outgoing:
    status: int
    body: bytes = b""
    media_type: str | None = None
