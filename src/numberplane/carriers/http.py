"""What the HTTP carrier adapters share: one bounded request, and the errors every carrier means alike.

Where requests go is the operator's choice, never an org's (``api_base_url``): a platform
account's own base URL (``numberplane carriers add-platform --api-base-url``), else the
operator's per-carrier setting (``NUMBERPLANE_TWILIO_API_BASE_URL``...), else the carrier's own
API. An org's account never carries one: an org could otherwise point the server at anything.

Each request has an explicit timeout (``account.config["timeout_seconds"]``, default 15 s), no
redirects (a 3xx is a refusal, its target never fetched) and no retries: a paid call whose
outcome is unknown must be resolved by asking the carrier (``find``), never by sending it again.
Timeouts, connection failures, 429 and 5xx become ``CarrierUnavailable`` (with ``retry_after``
from Retry-After); 401/403 become ``CarrierAuthError`` naming the carrier. Everything else is
the adapter's to map. Credentials never reach a log line or an error message, and what a reply
says reaches an error message only as the carrier's own short error words (``words``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from numberplane import __version__
from numberplane.carriers.base import CarrierAuthError, CarrierRejected, CarrierUnavailable
from numberplane.carriers.models import CarrierAccount
from numberplane.kernel.settings import get_settings

log = logging.getLogger("numberplane.carriers")

DEFAULT_TIMEOUT = 15.0
MAX_TIMEOUT = 120.0
# Bounds on paging through a carrier's lists (list_owned, find by filter): no loop runs forever.
DEFAULT_MAX_PAGES = 200
USER_AGENT = f"numberplane/{__version__}"


def retry_after_seconds(value: str | None) -> int | None:
    """Retry-After as whole seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0, int((when - dt.datetime.now(dt.UTC)).total_seconds()))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
MAX_WORDS = 200


def words(text: str) -> str:
    """A carrier's error words as they may appear in an error message: one short line."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= MAX_WORDS else text[: MAX_WORDS - 1] + "…"


def api_base_url(account: CarrierAccount, *, default: str, space: str | None = None) -> str:
    """Where ``account``'s API requests go (see the module docstring): never an org's choice."""
    own = (account.config or {}).get("api_base_url")
    if account.org_id is None and isinstance(own, str) and own.strip():
        return own.strip().rstrip("/")
    configured = get_settings().carrier_api_base_url(account.carrier)
    if configured:
        return configured.replace("{space}", space or "")
    return default.rstrip("/")


def timeout_of(config: Mapping[str, Any]) -> float:
    raw = config.get("timeout_seconds")
    try:
        value = float(raw) if raw is not None else DEFAULT_TIMEOUT
    except (TypeError, ValueError):
        value = DEFAULT_TIMEOUT
    return min(max(value, 0.05), MAX_TIMEOUT)


class HttpCarrier:
    """Base of the Twilio, Telnyx and SignalWire adapters."""

    carrier = "http"
    display = "the carrier"
    default_base_url = ""

    def __init__(self, *, account: CarrierAccount, credentials: dict[str, Any], db: Any = None) -> None:
        self.account_id = account.id
        self.config: dict[str, Any] = dict(account.config or {})
        self.credentials = credentials
        self.timeout = timeout_of(self.config)
        self.max_pages = int(self.config.get("max_pages") or DEFAULT_MAX_PAGES)
        # Page size for listing the account's numbers (tests use small pages to exercise paging).
        self.page_size: int | None = int(self.config["page_size"]) if self.config.get("page_size") else None
        self.base_url = api_base_url(account, default=self.default_base_url)

    # -- to override -------------------------------------------------------------------------
    def auth(self) -> httpx.Auth | None:
        return None

    def headers(self) -> dict[str, str]:
        return {}

    def error_message(self, response: httpx.Response) -> str:
        """The carrier's own words for an error response (never includes credentials)."""
        return f"HTTP {response.status_code}"

    # -- shared ------------------------------------------------------------------------------
    def said(self, response: httpx.Response) -> str:
        """The carrier's error words, fit for an error message an org reads (one short line)."""
        return words(self.error_message(response))

    def url(self, path: str) -> str:
        """``path`` under the account's API base URL (never another host: paging links are rebased)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        if not self.base_url:
            raise CarrierRejected(
                f"the account has no usable {self.display} API address", carrier=self.carrier
            )
        url = self.url(path)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers()}
        try:
            async with httpx.AsyncClient(
                auth=auth or self.auth(), timeout=httpx.Timeout(self.timeout), follow_redirects=False
            ) as client:
                response = await client.request(
                    method, url, params=params, data=data, json=json, headers=headers
                )
        except httpx.TimeoutException as exc:
            log.warning("%s %s %s: timed out after %ss", self.carrier, method, _path(url), self.timeout)
            raise CarrierUnavailable(
                f"{self.display} did not answer within {self.timeout:g}s",
                carrier=self.carrier,
                detail=exc.__class__.__name__,
            ) from exc
        except httpx.TransportError as exc:
            log.warning("%s %s %s: %s", self.carrier, method, _path(url), exc.__class__.__name__)
            raise CarrierUnavailable(
                f"could not reach {self.display} at {_origin(url)} ({exc.__class__.__name__})",
                carrier=self.carrier,
                detail=exc.__class__.__name__,
            ) from exc
        log.info("%s %s %s -> %s", self.carrier, method, _path(url), response.status_code)
        status = response.status_code
        if status >= 500 or status == 429:
            raise CarrierUnavailable(
                f"{self.display} is unavailable ({self.said(response)}); try again later",
                carrier=self.carrier,
                detail=_snippet(response),
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if status in (401, 403):
            raise CarrierAuthError(
                f"{self.display} rejected the account's credentials ({self.said(response)})",
                carrier=self.carrier,
                detail=_snippet(response),
            )
        if 300 <= status < 400:
            # Never followed, and where it pointed is not repeated: a redirect is a refusal.
            log.warning("%s %s %s: answered %s, not followed", self.carrier, method, _path(url), status)
            raise CarrierRejected(
                f"{self.display} answered with a redirect (HTTP {status}), which is not followed",
                carrier=self.carrier,
            )
        return response

    def body(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _data(self, response: httpx.Response) -> Any:
        """The ``data`` member of a JSON:API-style body (Telnyx, SignalWire RELAY REST)."""
        body = self.body(response)
        return body.get("data") if isinstance(body, dict) else None

    def _rejected(self, response: httpx.Response, what: str) -> CarrierRejected:
        """A definite refusal (4xx): nothing happened at the carrier."""
        return CarrierRejected(
            f"{self.display} refused to {what} ({self.said(response)})",
            carrier=self.carrier,
            detail=response.text[:500],
        )


def _path(url: str) -> str:
    return urlsplit(url).path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _snippet(response: httpx.Response) -> str:
    return response.text[:500]
