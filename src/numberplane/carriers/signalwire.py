"""SignalWire RELAY REST: ``/api/relay/rest/phone_numbers`` (+ ``/search``) and ``imported_phone_numbers``.

HTTP Basic auth with the project id and API token (scope "Numbers"); JSON bodies. A purchase is
``POST /phone_numbers {"number": ...}`` (200); the number is then pointed at Numberplane with
``PUT /phone_numbers/{id}`` using the cXML handler (``call_handler: laml_webhooks``,
``call_request_url``). Release is ``DELETE`` (204). SignalWire takes no reference on a purchase:
a lost response is resolved by ``find`` (``GET /phone_numbers?filter_number=...``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from numberplane.carriers.base import (
    AvailableNumber,
    CarrierError,
    CarrierNotFound,
    CarrierNumber,
    CarrierRejected,
    NoNumbersAvailable,
    NumberConfig,
    NumberUnavailable,
    SearchQuery,
)
from numberplane.carriers.http import HttpCarrier, api_base_url
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.schemas import space_label
from numberplane.kernel import e164

log = logging.getLogger("numberplane.carriers.signalwire")

ROOT = "api/relay/rest"
PAGE_SIZE = 1000
SEARCH_TYPES = {"local": "local", "toll_free": "toll-free"}
COUNTRIES = ("US", "CA")


class SignalWireCarrier(HttpCarrier):
    carrier = "signalwire"
    display = "SignalWire"

    def __init__(self, *, account: CarrierAccount, credentials: dict[str, Any], db: Any = None) -> None:
        super().__init__(account=account, credentials=credentials, db=db)
        space = str(self.config.get("space") or credentials.get("space") or "").strip()
        label = space_label(space)  # None: not a SignalWire space, so no address to send to
        default = f"https://{label}.signalwire.com" if label else ""
        self.base_url = api_base_url(account, default=default, space=label) if label else ""
        self.space = space
        self.project_id = str(self.config.get("project_id") or credentials.get("project_id") or "")
        self._auth = httpx.BasicAuth(self.project_id, str(credentials.get("api_token") or ""))

    def auth(self) -> httpx.Auth:
        return self._auth

    def error_message(self, response: httpx.Response) -> str:
        body = self.body(response)
        if isinstance(body, dict):
            if isinstance(body.get("errors"), list) and body["errors"]:
                first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
                text = " — ".join(str(first[k]) for k in ("title", "detail") if first.get(k))
                return text or f"HTTP {response.status_code}"
            if body.get("error"):
                return str(body["error"])
            if body.get("message"):
                return str(body["message"])
        return f"HTTP {response.status_code}"

    # -- the interface --------------------------------------------------------------------
    async def verify_credentials(self) -> None:
        response = await self.request("GET", f"{ROOT}/phone_numbers", params={"page_size": 1})
        if response.status_code >= 400:
            raise self._rejected(response, "list numbers with these credentials")

    async def search(self, query: SearchQuery) -> list[AvailableNumber]:
        kind = SEARCH_TYPES.get(query.number_type)
        country = query.country.upper()
        if kind is None or country not in COUNTRIES:
            raise CarrierRejected(
                f"SignalWire searches local and toll_free numbers in {' and '.join(COUNTRIES)}, "
                f"not {query.number_type} numbers in {country}",
                carrier=self.carrier,
            )
        params: dict[str, Any] = {"number_type": kind, "max_results": max(1, min(query.limit, 100))}
        if query.area_code:
            params["areacode"] = query.area_code
        if query.contains:
            params["contains"] = query.contains
        response = await self.request("GET", f"{ROOT}/phone_numbers/search", params=params)
        if response.status_code >= 400:
            raise self._rejected(response, "search")
        out: list[AvailableNumber] = []
        for item in self._data(response) or []:
            if not isinstance(item, dict):
                continue
            found = _available(item, query)
            if found is not None and found.country == country:
                out.append(found)
        if not out:
            where = f" in area code {query.area_code}" if query.area_code else ""
            raise NoNumbersAvailable(
                f"SignalWire has no {query.number_type} numbers available{where} ({country})",
                carrier=self.carrier,
            )
        return out[: query.limit]

    async def buy(self, *, phone_number: str, reference: str, config: NumberConfig) -> CarrierNumber:
        response = await self.request("POST", f"{ROOT}/phone_numbers", json={"number": phone_number})
        if response.status_code == 422:
            raise NumberUnavailable(
                f"{phone_number} is not available at SignalWire ({self.said(response)})",
                carrier=self.carrier,
                detail=response.text[:500],
            )
        if response.status_code >= 400:
            raise self._rejected(response, f"buy {phone_number}")
        bought = self._number(self._data(response) or self.body(response))
        # Bought: from here on no error may read as "nothing was bought". If pointing the number
        # at us fails, it is returned as the carrier holds it and reconcile repairs the drift.
        try:
            return await self.configure(carrier_number_id=bought.carrier_number_id, config=config)
        except CarrierError as exc:
            log.warning("signalwire %s bought, not configured yet (%s)", bought.carrier_number_id, exc.code)
            return bought

    async def find(self, *, phone_number: str, reference: str | None = None) -> CarrierNumber | None:
        digits = "".join(ch for ch in phone_number if ch.isdigit())
        params = {"filter_number": digits, "page_size": 50}
        response = await self.request("GET", f"{ROOT}/phone_numbers", params=params)
        if response.status_code >= 400:
            raise self._rejected(response, f"look up {phone_number}")
        for item in self._data(response) or []:
            if isinstance(item, dict) and item.get("number") == phone_number:
                return self._number(item)
        return None

    async def configure(self, *, carrier_number_id: str, config: NumberConfig) -> CarrierNumber:
        response = await self.request(
            "PUT", f"{ROOT}/phone_numbers/{quote(carrier_number_id, safe='')}", json=_config_body(config)
        )
        if response.status_code == 404:
            raise CarrierNotFound(
                f"SignalWire number {carrier_number_id} is not held by this project", carrier=self.carrier
            )
        if response.status_code >= 400:
            raise self._rejected(response, f"update {carrier_number_id}")
        return self._number(self._data(response) or self.body(response))

    async def release(self, *, carrier_number_id: str) -> None:
        response = await self.request("DELETE", f"{ROOT}/phone_numbers/{quote(carrier_number_id, safe='')}")
        if response.status_code in (200, 204, 404):
            return
        raise self._rejected(response, f"release {carrier_number_id}")

    async def list_owned(self) -> AsyncIterator[CarrierNumber]:
        params: dict[str, Any] = {"page_size": self.page_size or PAGE_SIZE}
        for _ in range(self.max_pages):
            response = await self.request("GET", f"{ROOT}/phone_numbers", params=params)
            if response.status_code >= 400:
                raise self._rejected(response, "list the project's numbers")
            body = self.body(response) or {}
            for item in body.get("data") or []:
                if isinstance(item, dict) and item.get("id"):
                    yield self._number(item)
            next_link = (body.get("links") or {}).get("next")
            if not next_link or not body.get("data"):
                return
            # Follow the link's query (page_token) on our own base URL, never another host.
            params = dict(parse_qsl(urlsplit(str(next_link)).query))
        raise CarrierRejected(
            f"this SignalWire project has more than {self.max_pages} pages of numbers; "
            "raise max_pages in the account config",
            carrier=self.carrier,
        )

    # -- beyond the common interface --------------------------------------------------------
    async def import_number(self, *, phone_number: str, number_type: str = "longcode") -> CarrierNumber:
        """Register a number hosted elsewhere with the project (``imported_phone_numbers``, 201)."""
        body = {"number": phone_number, "number_type": number_type, "capabilities": ["voice", "sms"]}
        response = await self.request("POST", f"{ROOT}/imported_phone_numbers", json=body)
        if response.status_code >= 400:
            raise self._rejected(response, f"import {phone_number}")
        return self._number(self._data(response) or self.body(response))

    def _number(self, item: Any) -> CarrierNumber:
        if not isinstance(item, dict) or not item.get("id") or not item.get("number"):
            raise CarrierRejected("SignalWire answered with an unexpected body", carrier=self.carrier)
        caps = item.get("capabilities")
        capabilities = None
        if isinstance(caps, list):
            capabilities = {k: k in caps for k in ("voice", "sms", "mms", "fax")}
        return CarrierNumber(
            carrier_number_id=str(item["id"]),
            phone_number=str(item["number"]),
            voice_url=(item.get("call_request_url") or None)
            if item.get("call_handler") == "laml_webhooks"
            else None,
            sms_url=(item.get("message_request_url") or None)
            if item.get("message_handler") == "laml_webhooks"
            else None,
            reference=None,
            status="active",
            capabilities=capabilities,
        )


def _config_body(config: NumberConfig) -> dict[str, Any]:
    """SignalWire's fields for what Numberplane owns. ``None`` leaves a field as the carrier has it."""
    body: dict[str, Any] = {}
    if config.friendly_name:
        body["name"] = config.friendly_name
    if config.voice_url is not None:
        body.update(
            call_handler="laml_webhooks",
            call_receive_mode="voice",
            call_request_url=config.voice_url,
            call_request_method="POST",
        )
    if config.voice_fallback_url is not None:
        body.update(call_fallback_url=config.voice_fallback_url, call_fallback_method="POST")
    if config.status_callback_url is not None:
        body.update(call_status_callback_url=config.status_callback_url, call_status_callback_method="POST")
    if config.sms_url is not None:
        body.update(
            message_handler="laml_webhooks", message_request_url=config.sms_url, message_request_method="POST"
        )
    return body


def _available(item: dict[str, Any], query: SearchQuery) -> AvailableNumber | None:
    number = str(item.get("number") or item.get("e164") or "")
    try:
        parsed = e164.parse(number)
    except e164.InvalidPhoneNumber:
        return None
    caps = item.get("capabilities")
    if isinstance(caps, dict):
        capabilities = {k: bool(caps.get(k)) for k in ("voice", "sms", "mms", "fax")}
    elif isinstance(caps, list):
        capabilities = {k: k in caps for k in ("voice", "sms", "mms", "fax")}
    else:
        capabilities = {"voice": True, "sms": True, "mms": False, "fax": False}
    return AvailableNumber(
        phone_number=parsed.e164,
        country=parsed.country or query.country.upper(),
        number_type=query.number_type,
        area_code=parsed.area_code,
        locality=item.get("city") or item.get("rate_center") or None,
        region=item.get("region") or None,
        capabilities=capabilities,
    )
