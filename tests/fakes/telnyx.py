"""A fake Telnyx API v2: available_phone_numbers, number_orders, phone_numbers, texml_applications.

Contract enforced (Telnyx OpenAPI spec3 and docs, as summarised in carriers.md §1):
- ``Authorization: Bearer <API key>``; else 401 ``{"errors":[{"code":"10009",...}]}``.
- JSON bodies (``application/json``); ``filter[...]``/``page[...]`` query parameters, only the
  documented ones; ``filter[phone_number]`` on phone_numbers needs digits only (a ``+`` returns
  nothing, as documented).
- Number orders complete asynchronously: created ``pending``; after ``order_polls`` GETs of the
  order it becomes ``success`` (the number appears in /phone_numbers, active, on the order's
  connection with its customer_reference) or ``failure`` for numbers in ``fail_orders``.
  Orders are listable by ``filter[customer_reference]``.
- Ordering a number not on offer is 422 with ``source.pointer`` ``/phone_numbers/0/phone_number``;
  an unknown connection_id is 422 on ``/connection_id``.
- ``DELETE /phone_numbers/{id}`` answers 200 with the number (status ``deleted``).
- ``PATCH /texml_applications/{id}`` requires friendly_name and voice_url (as the spec marks).
- ``GET /connections/{id}`` shows only this account's connections (404 ``10005`` otherwise).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from typing import Any

import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import FakeCarrier, hang

TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
SEARCH_FILTERS = {
    "filter[phone_number][starts_with]",
    "filter[phone_number][contains]",
    "filter[phone_number][ends_with]",
    "filter[locality]",
    "filter[administrative_area]",
    "filter[country_code]",
    "filter[national_destination_code]",
    "filter[rate_center]",
    "filter[phone_number_type]",
    "filter[features]",
    "filter[limit]",
    "filter[best_effort]",
    "filter[quickship]",
    "filter[reservable]",
    "filter[exclude_held_numbers]",
}
NUMBER_TYPES = {"local", "toll_free", "mobile", "national", "shared_cost"}
LIST_PARAMS = {
    "page[number]",
    "page[size]",
    "sort",
    "filter[phone_number]",
    "filter[status]",
    "filter[connection_id]",
    "filter[customer_reference]",
    "filter[tag]",
    "filter[country_iso_alpha2]",
    "filter[source]",
}
ORDER_LIST_PARAMS = {
    "page[number]",
    "page[size]",
    "filter[customer_reference]",
    "filter[status]",
    "filter[created_at][gt]",
    "filter[created_at][lt]",
    "filter[phone_numbers_count]",
    "filter[requirements_met]",
}
PATCH_FIELDS = {
    "connection_id",
    "customer_reference",
    "tags",
    "billing_group_id",
    "address_id",
    "external_pin",
    "hd_voice_enabled",
    "id",
}
TEXML_FIELDS = {
    "friendly_name",
    "voice_url",
    "voice_fallback_url",
    "voice_method",
    "status_callback",
    "status_callback_method",
    "active",
    "anchorsite_override",
    "dtmf_type",
    "first_command_timeout",
    "first_command_timeout_secs",
    "call_cost_in_webhooks",
    "inbound",
    "outbound",
    "tags",
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class TelnyxError(Exception):
    def __init__(
        self, status: int, code: str, title: str, detail: str = "", pointer: str | None = None
    ) -> None:
        super().__init__(title)
        self.status, self.code, self.title, self.detail, self.pointer = status, code, title, detail, pointer


class FakeTelnyx(FakeCarrier):
    def __init__(self) -> None:
        super().__init__()
        self.api_key = "KEY" + secrets.token_hex(16)
        self.texml_application_id = str(secrets.randbelow(10**18) + 10**18)
        self.connection_id = str(secrets.randbelow(10**18) + 10**18)  # a plain (non-TeXML) connection
        self.applications: dict[str, dict[str, Any]] = {
            self.texml_application_id: {
                "id": self.texml_application_id,
                "record_type": "texml_application",
                "friendly_name": "Fake TeXML app",
                "voice_url": "https://example.com/original",
                "voice_method": "get",
                "voice_fallback_url": None,
                "status_callback": None,
                "status_callback_method": "post",
                "active": True,
                "created_at": _now(),
                "updated_at": _now(),
            }
        }
        self.connections = {self.texml_application_id, self.connection_id}
        self.numbers: dict[str, dict[str, Any]] = {}  # id -> PhoneNumber
        self.orders: dict[str, dict[str, Any]] = {}  # id -> NumberOrder (+ "_polls_left")
        self.on_order: set[str] = set()
        self.taken: set[str] = set()
        self.sold_out: set[str] = set()
        self.fail_orders: set[str] = set()
        self.order_polls = 1
        self.per_area = 20

    # -- books ------------------------------------------------------------------------------
    def books(self) -> dict[str, dict[str, Any]]:
        return self.numbers

    def owned_numbers(self) -> set[str]:
        with self.lock:
            return {n["phone_number"] for n in self.numbers.values() if n["status"] != "deleted"}

    def by_number(self, phone_number: str) -> dict[str, Any] | None:
        with self.lock:
            for n in self.numbers.values():
                if n["phone_number"] == phone_number and n["status"] != "deleted":
                    return n
        return None

    def stock(self, country: str, kind: str, area: str | None) -> list[str]:
        if country not in ("US", "CA") or kind not in ("local", "toll_free"):
            return []
        if kind == "toll_free":
            areas = [area] if area else list(TOLL_FREE)
            if area and area not in TOLL_FREE:
                return []
        else:
            areas = [area] if area else ["415", "212", "312"]
            if area in TOLL_FREE:
                return []
        held = self.owned_numbers() | self.taken | self.on_order
        out = []
        for code in areas:
            if code is None or code in self.sold_out:
                continue
            for line in range(100, 100 + self.per_area):
                number = f"+1{code}5550{line:03d}"
                parsed = phonenumbers.parse(number)
                if (
                    phonenumbers.is_valid_number(parsed)
                    and phonenumbers.region_code_for_number(parsed) == country
                    and number not in held
                ):
                    out.append(number)
        return out

    def offered(self, phone_number: str) -> bool:
        try:
            parsed = phonenumbers.parse(phone_number)
        except phonenumbers.NumberParseException:
            return False
        area = str(parsed.national_number)[:3]
        country = phonenumbers.region_code_for_number(parsed) or ""
        return phone_number in self.stock(country, "toll_free" if area in TOLL_FREE else "local", area)

    def add_owned(self, phone_number: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            resource = self._phone_number(phone_number, connection_id=None, reference=None)
            resource.update(fields)
            self.numbers[resource["id"]] = resource
            return resource

    def complete_orders(self) -> None:
        """Complete every pending order now (as if enough time had passed)."""
        with self.lock:
            for order in self.orders.values():
                order["_polls_left"] = 0
                self._advance(order)

    # -- app --------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/available_phone_numbers", self.search, methods=["GET"]),
                Route("/v2/number_orders", self.create_order, methods=["POST"]),
                Route("/v2/number_orders", self.list_orders, methods=["GET"]),
                Route("/v2/number_orders/{id}", self.get_order, methods=["GET"]),
                Route("/v2/phone_numbers", self.list_numbers, methods=["GET"]),
                Route("/v2/phone_numbers/{id}", self.get_number, methods=["GET"]),
                Route("/v2/phone_numbers/{id}", self.patch_number, methods=["PATCH"]),
                Route("/v2/phone_numbers/{id}", self.delete_number, methods=["DELETE"]),
                Route("/v2/connections/{id}", self.get_connection, methods=["GET"]),
                Route("/v2/texml_applications/{id}", self.get_app, methods=["GET"]),
                Route("/v2/texml_applications/{id}", self.patch_app, methods=["PATCH"]),
            ]
        )

    @staticmethod
    def error(
        status: int,
        code: str,
        title: str,
        detail: str = "",
        pointer: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        err: dict[str, Any] = {
            "code": code,
            "title": title,
            "detail": detail,
            "meta": {"url": f"https://developers.telnyx.com/docs/overview/errors/{code}"},
        }
        if pointer:
            err["source"] = {"pointer": pointer}
        return JSONResponse({"errors": [err]}, status_code=status, headers=headers)

    async def _run(self, request: Request, op: str, handler: Any) -> Response:
        await request.body()
        try:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                raise TelnyxError(
                    401, "10009", "Authentication failed", "Could not understand the provided credentials."
                )
            fault = self.faults.take(op)
            if fault is not None and fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                self.log(request, op, fault=f"status {fault.status}")
                code = str(fault.code or ("10011" if fault.status == 429 else "10007"))
                return self.error(
                    fault.status,
                    code,
                    fault.message or "Unexpected error",
                    "Injected failure",
                    headers=headers,
                )
            if fault is not None and fault.kind == "timeout":
                self.log(request, op, fault="timeout")
                await hang(request, self.hang_seconds)
                return self.error(504, "10007", "Unexpected error")
            response: Response = await handler(request)
            if fault is not None and fault.kind == "lose_response":
                self.log(request, op, fault="lose_response")
                await hang(request, self.hang_seconds)
            return response
        except TelnyxError as exc:
            self.log(request, op, error=exc.code)
            return self.error(exc.status, exc.code, exc.title, exc.detail, exc.pointer)

    @staticmethod
    def _check_query(request: Request, allowed: set[str]) -> None:
        for key in request.query_params:
            if key not in allowed:
                raise TelnyxError(400, "10015", "Bad Request", f"Unknown query parameter {key}")

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise TelnyxError(400, "10015", "Bad Request", "Content-Type must be application/json")
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise TelnyxError(400, "10015", "Bad Request", "The body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise TelnyxError(400, "10015", "Bad Request", "The body must be a JSON object")
        return body

    @staticmethod
    def _page(request: Request, default_size: int = 20, max_size: int = 250) -> tuple[int, int]:
        q = request.query_params
        try:
            number = int(q.get("page[number]", 1))
            size = int(q.get("page[size]", default_size))
        except ValueError as exc:
            raise TelnyxError(
                400, "10015", "Bad Request", "page[number] and page[size] are integers"
            ) from exc
        if number < 1 or not 1 <= size <= max_size:
            raise TelnyxError(400, "10015", "Bad Request", f"page[size] must be 1..{max_size}")
        return number, size

    @staticmethod
    def _listing(rows: list[dict[str, Any]], number: int, size: int) -> JSONResponse:
        total = len(rows)
        chunk = rows[(number - 1) * size : number * size]
        return JSONResponse(
            {
                "data": [_public(r) for r in chunk],
                "meta": {
                    "page_number": number,
                    "page_size": size,
                    "total_pages": max(1, -(-total // size)),
                    "total_results": total,
                },
            }
        )

    # -- handlers ---------------------------------------------------------------------------
    async def search(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, SEARCH_FILTERS)
            self.log(request, "search")
            q = request.query_params
            kind = q.get("filter[phone_number_type]", "local")
            if kind not in NUMBER_TYPES:
                raise TelnyxError(
                    422, "10032", "Invalid enumerated value", f"{kind} is not a phone_number_type"
                )
            country = q.get("filter[country_code]", "US")
            area = q.get("filter[national_destination_code]")
            limit = int(q.get("filter[limit]", 20))
            numbers = self.stock(country, kind, area)
            contains = q.get("filter[phone_number][contains]")
            if contains:
                numbers = [n for n in numbers if contains in n[2:]]
            return JSONResponse(
                {
                    "data": [_available(n, country) for n in numbers[:limit]],
                    "meta": {"total_results": len(numbers), "best_effort_results": 0},
                }
            )

        return await self._run(request, "search", go)

    async def create_order(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            body = await self._json(request)
            self.log(request, "order", body=body)
            wanted = body.get("phone_numbers")
            if not isinstance(wanted, list) or not wanted:
                raise TelnyxError(
                    422, "10004", "Missing required parameter", "phone_numbers is required", "/phone_numbers"
                )
            connection = body.get("connection_id")
            if connection is not None and connection not in self.connections:
                raise TelnyxError(
                    422, "10015", "Invalid connection_id", f"no connection {connection}", "/connection_id"
                )
            with self.lock:
                numbers = []
                for i, entry in enumerate(wanted):
                    number = entry.get("phone_number") if isinstance(entry, dict) else None
                    if not isinstance(number, str) or not number.startswith("+"):
                        raise TelnyxError(
                            422,
                            "10016",
                            "Phone number must be in +E.164 format",
                            pointer=f"/phone_numbers/{i}/phone_number",
                        )
                    if not self.offered(number):
                        raise TelnyxError(
                            422,
                            "10015",
                            "Number not available",
                            f"{number} is not available for purchase",
                            f"/phone_numbers/{i}/phone_number",
                        )
                    numbers.append(number)
                now = _now()
                order = {
                    "id": str(uuid.uuid4()),
                    "record_type": "number_order",
                    "status": "pending",
                    "phone_numbers": [
                        {
                            "id": str(uuid.uuid4()),
                            "record_type": "number_order_phone_number",
                            "phone_number": n,
                            "status": "pending",
                            "phone_number_type": "toll_free" if n[2:5] in TOLL_FREE else "local",
                            "country_code": "US",
                            "regulatory_requirements": [],
                            "requirements_met": True,
                            "requirements_status": "approved",
                            "bundle_id": None,
                        }
                        for n in numbers
                    ],
                    "phone_numbers_count": len(numbers),
                    "connection_id": connection,
                    "messaging_profile_id": body.get("messaging_profile_id"),
                    "billing_group_id": body.get("billing_group_id"),
                    "customer_reference": body.get("customer_reference"),
                    "sub_number_orders_ids": [str(uuid.uuid4())],
                    "requirements_met": True,
                    "created_at": now,
                    "updated_at": now,
                    "_polls_left": self.order_polls,
                }
                self.on_order.update(numbers)
                self.orders[order["id"]] = order
                return JSONResponse({"data": _public(order)})

        return await self._run(request, "order", go)

    def _advance(self, order: dict[str, Any]) -> None:
        if order["status"] != "pending":
            return
        if order["_polls_left"] > 0:
            order["_polls_left"] -= 1
            return
        failed = False
        for entry in order["phone_numbers"]:
            number = entry["phone_number"]
            self.on_order.discard(number)
            if number in self.fail_orders:
                entry["status"] = "failure"
                failed = True
                continue
            entry["status"] = "success"
            resource = self._phone_number(
                number, connection_id=order["connection_id"], reference=order["customer_reference"]
            )
            self.numbers[resource["id"]] = resource
            self.purchases.append(number)
        order["status"] = "failure" if failed else "success"
        order["updated_at"] = _now()

    async def get_order(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "order_status")
            with self.lock:
                order = self.orders.get(request.path_params["id"])
                if order is None:
                    raise TelnyxError(404, "10005", "Resource not found")
                self._advance(order)
                return JSONResponse({"data": _public(order)})

        return await self._run(request, "order_status", go)

    async def list_orders(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, ORDER_LIST_PARAMS)
            self.log(request, "orders")
            q = request.query_params
            number, size = self._page(request)
            with self.lock:
                rows = list(self.orders.values())
            if "filter[customer_reference]" in q:
                rows = [o for o in rows if o["customer_reference"] == q["filter[customer_reference]"]]
            if "filter[status]" in q:
                rows = [o for o in rows if o["status"] == q["filter[status]"]]
            summaries = [
                {
                    **{k: v for k, v in o.items() if k != "phone_numbers"},
                    "phone_numbers": [
                        {"id": p["id"], "phone_number": p["phone_number"]} for p in o["phone_numbers"]
                    ],
                }
                for o in rows
            ]
            return self._listing(summaries, number, size)

        return await self._run(request, "orders", go)

    async def list_numbers(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, LIST_PARAMS)
            self.log(request, "list")
            q = request.query_params
            number, size = self._page(request)
            with self.lock:
                rows = sorted(
                    (n for n in self.numbers.values() if n["status"] != "deleted"),
                    key=lambda n: (n["purchased_at"], n["id"]),
                )
            if "filter[phone_number]" in q:
                pattern = q["filter[phone_number]"]
                # Documented: at least three digits; non-numerical characters return nothing.
                if not pattern.isdigit() or len(pattern) < 3:
                    rows = []
                else:
                    rows = [n for n in rows if pattern in n["phone_number"]]
            for key, attr in (
                ("filter[status]", "status"),
                ("filter[connection_id]", "connection_id"),
                ("filter[customer_reference]", "customer_reference"),
            ):
                if key in q:
                    rows = [n for n in rows if n.get(attr) == q[key]]
            return self._listing(rows, number, size)

        return await self._run(request, "list", go)

    def _owned(self, request: Request) -> dict[str, Any]:
        resource = self.numbers.get(request.path_params["id"])
        if resource is None or resource["status"] == "deleted":
            raise TelnyxError(404, "10005", "Resource not found", "The requested resource was not found.")
        return resource

    async def get_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "fetch")
            return JSONResponse({"data": _public(self._owned(request))})

        return await self._run(request, "fetch", go)

    async def patch_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            body = await self._json(request)
            self.log(request, "update", body=body)
            for key in body:
                if key not in PATCH_FIELDS:
                    raise TelnyxError(422, "10015", "Invalid parameter", f"{key} cannot be set", f"/{key}")
            with self.lock:
                resource = self._owned(request)
                if "connection_id" in body:
                    if body["connection_id"] is not None and body["connection_id"] not in self.connections:
                        raise TelnyxError(
                            422, "10015", "Invalid connection_id", "no such connection", "/connection_id"
                        )
                    resource["connection_id"] = body["connection_id"]
                for key in ("customer_reference", "tags", "billing_group_id"):
                    if key in body:
                        resource[key] = body[key]
                resource["updated_at"] = _now()
                return JSONResponse({"data": _public(resource)})

        return await self._run(request, "update", go)

    async def delete_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "release")
            with self.lock:
                resource = self._owned(request)
                del self.numbers[resource["id"]]
                return JSONResponse({"data": {**_public(resource), "status": "deleted"}})

        return await self._run(request, "release", go)

    def _app(self, request: Request) -> dict[str, Any]:
        app = self.applications.get(request.path_params["id"])
        if app is None:
            raise TelnyxError(404, "10005", "Resource not found")
        return app

    async def get_app(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "texml")
            return JSONResponse({"data": dict(self._app(request))})

        return await self._run(request, "texml", go)

    async def get_connection(self, request: Request) -> Response:
        """``GET /connections/{id}``: any of the account's connections (TeXML ones included)."""

        async def go(request: Request) -> Response:
            self.log(request, "connection")
            connection_id = request.path_params["id"]
            if connection_id not in self.connections:
                raise TelnyxError(404, "10005", "Resource not found", f"no connection {connection_id}")
            record = "texml_application" if connection_id == self.texml_application_id else "ip_connection"
            return JSONResponse(
                {"data": {"id": connection_id, "record_type": record, "active": True, "created_at": _now()}}
            )

        return await self._run(request, "connection", go)

    async def patch_app(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            body = await self._json(request)
            self.log(request, "texml_update", body=body)
            for key in ("friendly_name", "voice_url"):
                if not body.get(key):
                    raise TelnyxError(
                        422, "10004", "Missing required parameter", f"{key} is required", f"/{key}"
                    )
            for key in body:
                if key not in TEXML_FIELDS:
                    raise TelnyxError(422, "10015", "Invalid parameter", f"{key} cannot be set", f"/{key}")
            for key in ("voice_method", "status_callback_method"):
                if key in body and body[key] not in ("get", "post"):
                    raise TelnyxError(422, "10032", "Invalid enumerated value", f"{key} is get or post")
            with self.lock:
                app = self._app(request)
                app.update(body)
                app["updated_at"] = _now()
                return JSONResponse({"data": dict(app)})

        return await self._run(request, "texml_update", go)

    def _phone_number(
        self, number: str, *, connection_id: str | None, reference: str | None
    ) -> dict[str, Any]:
        now = _now()
        return {
            "id": str(secrets.randbelow(10**18) + 10**18),
            "record_type": "phone_number",
            "phone_number": number,
            "status": "active",
            "connection_id": connection_id,
            "connection_name": "Fake TeXML app" if connection_id == self.texml_application_id else None,
            "messaging_profile_id": None,
            "messaging_profile_name": None,
            "customer_reference": reference,
            "tags": [],
            "phone_number_type": "toll_free" if number[2:5] in TOLL_FREE else "local",
            "country_iso_alpha2": "US",
            "billing_group_id": None,
            "emergency_enabled": False,
            "emergency_address_id": None,
            "call_forwarding_enabled": True,
            "cnam_listing_enabled": False,
            "caller_id_name_enabled": False,
            "call_recording_enabled": False,
            "t38_fax_gateway_enabled": False,
            "external_pin": None,
            "hd_voice_enabled": False,
            "deletion_lock_enabled": False,
            "inbound_call_screening": "disabled",
            "source_type": "number_order",
            "purchased_at": now,
            "created_at": now,
            "updated_at": now,
        }


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _available(number: str, country: str) -> dict[str, Any]:
    return {
        "record_type": "available_phone_number",
        "phone_number": number,
        "vanity_format": "",
        "best_effort": False,
        "quickship": True,
        "reservable": True,
        "region_information": [
            {"region_type": "country_code", "region_name": country},
            {"region_type": "rate_center", "region_name": "FAKEVILLE"},
            {"region_type": "state", "region_name": "CA"},
        ],
        "cost_information": {"upfront_cost": "1.00", "monthly_cost": "1.00", "currency": "USD"},
        "features": [{"name": "sms"}, {"name": "voice"}],
    }
