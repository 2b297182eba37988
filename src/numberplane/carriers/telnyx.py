"""Telnyx (API v2): available_phone_numbers, number_orders, phone_numbers, texml_applications.

Bearer auth with the API key; JSON bodies; ``filter[...]`` / ``page[...]`` query parameters.

A purchase is a *number order* that completes asynchronously (``pending`` → ``success`` or
``failure``). The order carries ``customer_reference`` = our order reference, so an order whose
response was lost is found again with ``GET /number_orders?filter[customer_reference]=...``
instead of being placed twice. ``buy`` polls the order a bounded number of times
(``order_poll_attempts`` × ``order_poll_interval`` from the account config) and otherwise
returns it as ``pending``; ``find`` resolves it later.

Where calls go: a Telnyx number routes to a *connection* (``connection_id``); a TeXML
application is one. With ``texml_application_id`` in the account config Numberplane owns that
application's ``voice_url`` / ``status_callback`` and points numbers at it; with only
``connection_id`` it points numbers at that connection and leaves its settings alone.
Telnyx numbers have no per-number SMS URL (messaging goes through a messaging profile:
``messaging_profile_id`` in the account config is passed on the order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

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
from numberplane.carriers.http import HttpCarrier
from numberplane.carriers.models import CarrierAccount
from numberplane.kernel import e164

log = logging.getLogger("numberplane.carriers.telnyx")

PAGE_SIZE = 250
ACTIVE = {"active", "emergency-only"}
PENDING = {
    "purchase-pending",
    "provision-pending",
    "port-pending",
    "requirement-info-pending",
    "requirement-info-under-review",
    "requirement-info-exception",
}
FAILED = {"purchase-failed", "port-failed"}
GONE = {"deleted", "ported-out", "port-out-pending"}
NUMBER_TYPES = {"local": "local", "toll_free": "toll_free", "mobile": "mobile"}


def _digits(phone_number: str) -> str:
    return "".join(ch for ch in phone_number if ch.isdigit())


class TelnyxCarrier(HttpCarrier):
    carrier = "telnyx"
    display = "Telnyx"
    default_base_url = "https://api.telnyx.com/v2"

    def __init__(self, *, account: CarrierAccount, credentials: dict[str, Any], db: Any = None) -> None:
        super().__init__(account=account, credentials=credentials, db=db)
        self._api_key = str(credentials.get("api_key") or "")
        self.texml_application_id: str | None = self.config.get("texml_application_id") or None
        self.connection_id: str | None = self.texml_application_id or self.config.get("connection_id") or None
        self.messaging_profile_id: str | None = self.config.get("messaging_profile_id") or None
        self.poll_attempts = max(0, int(self.config.get("order_poll_attempts", 3)))
        self.poll_interval = max(0.0, float(self.config.get("order_poll_interval", 1.0)))
        self._application: dict[str, Any] | None = None
        # connection_id of each number seen, for drift(); CarrierNumber has no field for it.
        self._connection_of: dict[str, str | None] = {}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def error_message(self, response: httpx.Response) -> str:
        body = self.body(response)
        if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
            text = " — ".join(str(first[k]) for k in ("title", "detail") if first.get(k))
            code = first.get("code")
            return f"{code}: {text}" if code else text or f"HTTP {response.status_code}"
        return f"HTTP {response.status_code}"

    def _pointer(self, response: httpx.Response) -> str:
        body = self.body(response)
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            for err in body["errors"]:
                if isinstance(err, dict) and isinstance(err.get("source"), dict):
                    return str(err["source"].get("pointer") or err["source"].get("parameter") or "")
        return ""

    # -- the interface --------------------------------------------------------------------
    async def verify_credentials(self) -> None:
        """Reading the TeXML application (or the connection) checks the key and proves the id
        belongs to it: Telnyx shows an account only its own applications and connections."""
        if self.texml_application_id:
            self._application = None
            await self._application_settings()
        plain = self.config.get("connection_id")
        if plain and plain != self.texml_application_id:
            response = await self.request("GET", f"connections/{quote(str(plain))}")
            if response.status_code == 404:
                raise CarrierRejected(
                    f"Telnyx has no connection {plain} on this account", carrier=self.carrier
                )
            if response.status_code >= 400:
                raise self._rejected(response, "read the connection")

    async def search(self, query: SearchQuery) -> list[AvailableNumber]:
        kind = NUMBER_TYPES.get(query.number_type)
        if kind is None:
            raise CarrierRejected(
                f"Telnyx searches local, toll_free or mobile numbers, not {query.number_type}",
                carrier=self.carrier,
            )
        params: dict[str, Any] = {
            "filter[country_code]": query.country.upper(),
            "filter[phone_number_type]": kind,
            "filter[limit]": max(1, min(query.limit, 100)),
            "filter[features]": "voice",
        }
        if query.area_code:
            params["filter[national_destination_code]"] = query.area_code
            params["filter[best_effort]"] = "false"
        if query.contains:
            params["filter[phone_number][contains]"] = query.contains
        response = await self.request("GET", "available_phone_numbers", params=params)
        if response.status_code >= 400:
            raise self._rejected(response, "search")
        data = self._data(response) or []
        out = [
            _available(item, query)
            for item in data
            if isinstance(item, dict) and item.get("phone_number") and not item.get("best_effort")
        ]
        if not out:
            where = f" in area code {query.area_code}" if query.area_code else ""
            raise NoNumbersAvailable(
                f"Telnyx has no {query.number_type} numbers available{where} ({query.country.upper()})",
                carrier=self.carrier,
            )
        return out[: query.limit]

    async def buy(self, *, phone_number: str, reference: str, config: NumberConfig) -> CarrierNumber:
        if not self.connection_id:
            raise CarrierRejected(
                "this Telnyx account has no texml_application_id or connection_id to point numbers at",
                carrier=self.carrier,
            )
        # Before anything is paid for: make the application send calls to us.
        await self._ensure_application(config)
        body: dict[str, Any] = {
            "phone_numbers": [{"phone_number": phone_number}],
            "connection_id": self.connection_id,
            "customer_reference": reference,
        }
        if self.messaging_profile_id:
            body["messaging_profile_id"] = self.messaging_profile_id
        response = await self.request("POST", "number_orders", json=body)
        if response.status_code >= 400:
            pointer = self._pointer(response)
            if not pointer or "phone_number" in pointer:
                raise NumberUnavailable(
                    f"Telnyx will not sell {phone_number} ({self.said(response)})",
                    carrier=self.carrier,
                    detail=response.text[:500],
                )
            raise self._rejected(response, f"order {phone_number}")
        order = self._data(response)
        if not isinstance(order, dict) or not order.get("id"):
            raise CarrierRejected("Telnyx answered the order with an unexpected body", carrier=self.carrier)
        # The order exists now: from here on, no error may read as "nothing was bought".
        try:
            for _ in range(self.poll_attempts):
                if _order_status(order, phone_number) != "pending":
                    break
                if self.poll_interval:
                    await asyncio.sleep(self.poll_interval)
                order = await self._get_order(str(order["id"])) or order
            result = await self._from_order(order, phone_number, reference)
        except CarrierError as exc:
            log.warning("telnyx order %s placed; its status is not known yet (%s)", order["id"], exc.code)
            return self._pending(order, phone_number, reference)
        if result.status == "failed":
            # A failed order is definite: Telnyx sold nothing.
            raise NumberUnavailable(
                f"Telnyx could not complete the order for {phone_number} (number order {order['id']} failed)",
                carrier=self.carrier,
            )
        return result

    async def find(self, *, phone_number: str, reference: str | None = None) -> CarrierNumber | None:
        held = await self._phone_number(phone_number)
        if held is not None and held.status != "failed":
            return held
        if reference:
            for summary in await self._orders_by_reference(reference):
                numbers = [p.get("phone_number") for p in summary.get("phone_numbers") or []]
                if phone_number not in numbers:
                    continue
                order = await self._get_order(str(summary["id"])) or summary
                return await self._from_order(order, phone_number, reference)
        return held

    async def configure(self, *, carrier_number_id: str, config: NumberConfig) -> CarrierNumber:
        if not self.connection_id:
            raise CarrierRejected(
                "this Telnyx account has no texml_application_id or connection_id", carrier=self.carrier
            )
        await self._ensure_application(config)
        response = await self.request(
            "PATCH",
            f"phone_numbers/{quote(carrier_number_id, safe='')}",
            json={"connection_id": self.connection_id},
        )
        if response.status_code == 404:
            raise CarrierNotFound(
                f"Telnyx number {carrier_number_id} is not held by this account", carrier=self.carrier
            )
        if response.status_code >= 400:
            raise self._rejected(response, f"update {carrier_number_id}")
        return await self._number(self._data(response))

    async def release(self, *, carrier_number_id: str) -> None:
        response = await self.request("DELETE", f"phone_numbers/{quote(carrier_number_id, safe='')}")
        if response.status_code in (200, 204, 404):
            return
        raise self._rejected(response, f"release {carrier_number_id}")

    async def list_owned(self) -> AsyncIterator[CarrierNumber]:
        for page in range(1, self.max_pages + 1):
            response = await self.request(
                "GET",
                "phone_numbers",
                params={"page[number]": page, "page[size]": self.page_size or PAGE_SIZE},
            )
            if response.status_code >= 400:
                raise self._rejected(response, "list the account's numbers")
            body = self.body(response) or {}
            data = body.get("data") or []
            for item in data:
                if isinstance(item, dict) and item.get("id") and item.get("status") not in GONE:
                    yield await self._number(item)
            total_pages = int((body.get("meta") or {}).get("total_pages") or 0)
            if not data or page >= total_pages:
                return
        raise CarrierRejected(
            f"this Telnyx account has more than {self.max_pages} pages of numbers; "
            "raise max_pages in the account config",
            carrier=self.carrier,
        )

    # -- drift: Telnyx routes by connection, not by a per-number URL -----------------------
    def drift(self, number: CarrierNumber, config: NumberConfig) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        held = self._connection_of.get(number.carrier_number_id)
        if self.connection_id and held != self.connection_id:
            out["connection_id"] = {"carrier": held, "expected": self.connection_id}
        elif self._application is not None and config.voice_url and number.voice_url != config.voice_url:
            out["voice_url"] = {"carrier": number.voice_url, "expected": config.voice_url}
        return out

    # -- helpers ----------------------------------------------------------------------------
    async def _application_settings(self) -> dict[str, Any] | None:
        if not self.texml_application_id:
            return None
        if self._application is None:
            response = await self.request("GET", f"texml_applications/{quote(self.texml_application_id)}")
            if response.status_code == 404:
                raise CarrierRejected(
                    f"Telnyx has no TeXML application {self.texml_application_id} on this account",
                    carrier=self.carrier,
                )
            if response.status_code >= 400:
                raise self._rejected(response, "read the TeXML application")
            data = self._data(response)
            self._application = data if isinstance(data, dict) else {}
        return self._application

    async def _ensure_application(self, config: NumberConfig) -> None:
        app = await self._application_settings()
        if app is None or not config.voice_url:
            return
        wanted: dict[str, Any] = {"voice_url": config.voice_url, "voice_method": "post"}
        if config.voice_fallback_url is not None:
            wanted["voice_fallback_url"] = config.voice_fallback_url
        if config.status_callback_url is not None:
            wanted["status_callback"] = config.status_callback_url
            wanted["status_callback_method"] = "post"
        if all(app.get(k) == v for k, v in wanted.items()):
            return
        # The spec requires friendly_name and voice_url on PATCH too.
        body = {"friendly_name": app.get("friendly_name") or "Numberplane", **wanted}
        response = await self.request(
            "PATCH", f"texml_applications/{quote(str(self.texml_application_id))}", json=body
        )
        if response.status_code >= 400:
            raise self._rejected(response, "update the TeXML application's voice URL")
        data = self._data(response)
        self._application = data if isinstance(data, dict) else {**app, **wanted}

    async def _phone_number(self, phone_number: str) -> CarrierNumber | None:
        # "Non-numerical characters will result in no values being returned": digits only.
        params = {"filter[phone_number]": _digits(phone_number), "page[number]": 1, "page[size]": 50}
        response = await self.request("GET", "phone_numbers", params=params)
        if response.status_code >= 400:
            raise self._rejected(response, f"look up {phone_number}")
        for item in self._data(response) or []:
            if (
                isinstance(item, dict)
                and item.get("phone_number") == phone_number
                and item.get("status") not in GONE
            ):
                return await self._number(item)
        return None

    async def _orders_by_reference(self, reference: str) -> list[dict[str, Any]]:
        params = {"filter[customer_reference]": reference, "page[number]": 1, "page[size]": 20}
        response = await self.request("GET", "number_orders", params=params)
        if response.status_code >= 400:
            raise self._rejected(response, "list number orders")
        return [o for o in self._data(response) or [] if isinstance(o, dict) and o.get("id")]

    async def _get_order(self, order_id: str) -> dict[str, Any] | None:
        response = await self.request("GET", f"number_orders/{quote(order_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._rejected(response, f"read number order {order_id}")
        data = self._data(response)
        return data if isinstance(data, dict) else None

    async def _from_order(self, order: dict[str, Any], phone_number: str, reference: str) -> CarrierNumber:
        status = _order_status(order, phone_number)
        if status == "failure":
            return CarrierNumber(
                carrier_number_id=str(order["id"]),
                phone_number=phone_number,
                reference=reference,
                status="failed",
            )
        if status == "success":
            held = await self._phone_number(phone_number)
            if held is not None:
                return held
        return self._pending(order, phone_number, reference)

    @staticmethod
    def _pending(order: dict[str, Any], phone_number: str, reference: str) -> CarrierNumber:
        """An order in flight: ``carrier_number_id`` is the order's id until the number exists."""
        return CarrierNumber(
            carrier_number_id=str(order["id"]),
            phone_number=phone_number,
            reference=reference,
            status="pending",
        )

    async def _number(self, item: Any) -> CarrierNumber:
        if not isinstance(item, dict) or not item.get("id") or not item.get("phone_number"):
            raise CarrierRejected("Telnyx answered with an unexpected body", carrier=self.carrier)
        number_id = str(item["id"])
        connection = item.get("connection_id") or None
        self._connection_of[number_id] = str(connection) if connection else None
        voice_url: str | None = None
        if connection and connection == self.connection_id:
            app = await self._application_settings()
            voice_url = (app or {}).get("voice_url") or None
        raw_status = str(item.get("status") or "active")
        status = "active" if raw_status in ACTIVE else "failed" if raw_status in FAILED else "pending"
        return CarrierNumber(
            carrier_number_id=number_id,
            phone_number=str(item["phone_number"]),
            voice_url=voice_url,
            sms_url=None,
            reference=item.get("customer_reference") or None,
            status=status,
        )


def _order_status(order: dict[str, Any], phone_number: str) -> str:
    for entry in order.get("phone_numbers") or []:
        if isinstance(entry, dict) and entry.get("phone_number") == phone_number and entry.get("status"):
            return str(entry["status"])
    return str(order.get("status") or "pending")


def _available(item: dict[str, Any], query: SearchQuery) -> AvailableNumber:
    number = str(item["phone_number"])
    try:
        parsed: e164.ParsedNumber | None = e164.parse(number)
    except e164.InvalidPhoneNumber:
        parsed = None
    regions = {
        r.get("region_type"): r.get("region_name")
        for r in item.get("region_information") or []
        if isinstance(r, dict)
    }
    features = {str(f.get("name")) for f in item.get("features") or [] if isinstance(f, dict)}
    cost = item.get("cost_information") or {}
    return AvailableNumber(
        phone_number=number,
        country=str(regions.get("country_code") or query.country.upper()),
        number_type=query.number_type,
        area_code=parsed.area_code if parsed else query.area_code,
        locality=regions.get("location") or regions.get("rate_center"),
        region=regions.get("state"),
        capabilities={
            "voice": "voice" in features,
            "sms": "sms" in features,
            "mms": "mms" in features,
            "fax": "fax" in features,
        },
        monthly_cost=cost.get("monthly_cost"),
        currency=cost.get("currency"),
    )
