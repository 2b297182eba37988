"""A fake SignalWire RELAY REST API: ``/api/relay/rest/phone_numbers`` (+ search) and imports.

Contract enforced (signalwire/docs TypeSpec, as summarised in carriers.md §2 and vendor-apis §3a):
- HTTP Basic ``project_id:api_token``; else 401 ``{"error":"Unauthorized"}``.
- JSON bodies; only the documented query parameters and update fields.
- Search: ``areacode``, ``number_type`` local|toll-free, one of starts_with/contains/ends_with
  (3–7 digits), ``max_results`` ≤ 100; answers ``{"links":…, "data":[{number, region, city,
  rate_center, lata, capabilities}]}``.
- Purchase ``POST /phone_numbers {"number"}`` → 200 PhoneNumber; not on offer → 422
  ``{"errors":[{"detail":null,"status":"422","title":"Invalid Attribute","code":"422"}]}``.
- ``PUT /phone_numbers/{id}`` (call_handler enum checked) → 200; ``DELETE`` → 204 (no body);
  unknown id → 404 ``{"error":"Not Found"}``.
- List: ``page_size`` 1–1000, cursor paging with ``links.next`` carrying ``page_token``.
- ``POST /imported_phone_numbers`` → 201 PhoneNumber.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import FakeCarrier, hang

ROOT = "/api/relay/rest"
TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
SEARCH_PARAMS = {
    "areacode",
    "number_type",
    "starts_with",
    "contains",
    "ends_with",
    "max_results",
    "region",
    "city",
}
LIST_PARAMS = {"filter_name", "filter_number", "page_number", "page_size", "page_token"}
CALL_HANDLERS = {
    "relay_context",
    "relay_topic",
    "relay_script",
    "relay_application",
    "relay_connector",
    "relay_sip_endpoint",
    "relay_verto_endpoint",
    "laml_webhooks",
    "laml_application",
    "dialogflow",
    "video_room",
    "ai_agent",
    "call_flow",
}
MESSAGE_HANDLERS = {"relay_context", "relay_topic", "relay_application", "laml_webhooks", "laml_application"}
UPDATE_FIELDS = {
    "name",
    "call_handler",
    "call_receive_mode",
    "call_request_url",
    "call_request_method",
    "call_fallback_url",
    "call_fallback_method",
    "call_status_callback_url",
    "call_status_callback_method",
    "call_laml_application_id",
    "call_dialogflow_agent_id",
    "call_relay_topic",
    "call_relay_topic_status_callback_url",
    "call_relay_script_url",
    "call_relay_context",
    "call_relay_context_status_callback_url",
    "call_relay_application",
    "call_relay_connector_id",
    "call_sip_endpoint_id",
    "call_verto_resource",
    "call_video_room_id",
    "call_ai_agent_id",
    "call_flow_id",
    "call_flow_version",
    "message_handler",
    "message_request_url",
    "message_request_method",
    "message_fallback_url",
    "message_fallback_method",
    "message_laml_application_id",
    "message_relay_topic",
    "message_relay_context",
    "message_relay_application",
}
URL_FIELDS = {k for k in UPDATE_FIELDS if k.endswith("_url")}
METHOD_FIELDS = {k for k in UPDATE_FIELDS if k.endswith("_method")}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class SignalWireError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}


def invalid(detail: str | None) -> SignalWireError:
    return SignalWireError(
        422, {"errors": [{"detail": detail, "status": "422", "title": "Invalid Attribute", "code": "422"}]}
    )


SIMPLE = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}


def simple(status: int) -> SignalWireError:
    return SignalWireError(status, {"error": SIMPLE.get(status, "Error")})


class FakeSignalWire(FakeCarrier):
    def __init__(self) -> None:
        super().__init__()
        self.space = "fake-space"
        self.project_id = str(uuid.uuid4())
        self.api_token = "PT" + secrets.token_hex(24)
        self.signing_key = "PSK_" + secrets.token_hex(12)
        self.numbers: dict[str, dict[str, Any]] = {}
        self.taken: set[str] = set()
        self.sold_out: set[str] = set()
        self.per_area = 20

    # -- books ------------------------------------------------------------------------------
    def books(self) -> dict[str, dict[str, Any]]:
        return self.numbers

    def owned_numbers(self) -> set[str]:
        with self.lock:
            return {n["number"] for n in self.numbers.values()}

    def by_number(self, phone_number: str) -> dict[str, Any] | None:
        with self.lock:
            for n in self.numbers.values():
                if n["number"] == phone_number:
                    return n
        return None

    def stock(self, kind: str, area: str | None) -> list[str]:
        if kind == "toll-free":
            areas = [area] if area else list(TOLL_FREE)
            if area and area not in TOLL_FREE:
                return []
        else:
            areas = [area] if area else ["415", "212", "312"]
            if area in TOLL_FREE:
                return []
        held = self.owned_numbers() | self.taken
        out = []
        for code in areas:
            if code is None or code in self.sold_out:
                continue
            for line in range(100, 100 + self.per_area):
                number = f"+1{code}5550{line:03d}"
                parsed = phonenumbers.parse(number)
                if phonenumbers.is_valid_number(parsed) and number not in held:
                    out.append(number)
        return out

    def offered(self, phone_number: str) -> bool:
        if not phone_number.startswith("+1") or len(phone_number) != 12:
            return False
        area = phone_number[2:5]
        return phone_number in self.stock("toll-free" if area in TOLL_FREE else "local", area)

    def add_owned(self, phone_number: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            resource = self._resource(phone_number)
            resource.update(fields)
            self.numbers[resource["id"]] = resource
            return resource

    # -- app --------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{ROOT}/phone_numbers/search", self.search, methods=["GET"]),
                Route(f"{ROOT}/phone_numbers", self.list_numbers, methods=["GET"]),
                Route(f"{ROOT}/phone_numbers", self.purchase, methods=["POST"]),
                Route(f"{ROOT}/phone_numbers/{{id}}", self.get_number, methods=["GET"]),
                Route(f"{ROOT}/phone_numbers/{{id}}", self.update_number, methods=["PUT"]),
                Route(f"{ROOT}/phone_numbers/{{id}}", self.delete_number, methods=["DELETE"]),
                Route(f"{ROOT}/imported_phone_numbers", self.import_number, methods=["POST"]),
            ]
        )

    def _authenticate(self, request: Request) -> None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        if user != self.project_id or password != self.api_token:
            raise simple(401)

    async def _run(self, request: Request, op: str, handler: Any) -> Response:
        await request.body()
        try:
            self._authenticate(request)
            fault = self.faults.take(op)
            if fault is not None and fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                self.log(request, op, fault=f"status {fault.status}")
                if fault.status == 422:
                    err = invalid(fault.message)
                    return JSONResponse(err.body, status_code=422, headers=headers)
                body = {"error": fault.message or SIMPLE.get(fault.status, "Service Unavailable")}
                return JSONResponse(body, status_code=fault.status, headers=headers)
            if fault is not None and fault.kind == "timeout":
                self.log(request, op, fault="timeout")
                await hang(request, self.hang_seconds)
                return JSONResponse({"error": "Gateway Timeout"}, status_code=504)
            response: Response = await handler(request)
            if fault is not None and fault.kind == "lose_response":
                self.log(request, op, fault="lose_response")
                await hang(request, self.hang_seconds)
            return response
        except SignalWireError as exc:
            self.log(request, op, error=exc.status)
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @staticmethod
    def _check_query(request: Request, allowed: set[str]) -> None:
        for key in request.query_params:
            if key not in allowed:
                raise simple(400)

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise simple(400)
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise simple(400) from exc
        if not isinstance(body, dict):
            raise simple(400)
        return body

    # -- handlers ---------------------------------------------------------------------------
    async def search(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, SEARCH_PARAMS)
            self.log(request, "search")
            q = request.query_params
            kind = q.get("number_type", "local")
            if kind not in ("local", "toll-free"):
                raise invalid("number_type must be local or toll-free")
            patterns = [k for k in ("starts_with", "contains", "ends_with") if k in q]
            if len(patterns) > 1:
                raise invalid("starts_with, contains and ends_with are mutually exclusive")
            for key in patterns:
                if not q[key].isdigit() or not 3 <= len(q[key]) <= 7:
                    raise invalid(f"{key} must be 3 to 7 digits")
            max_results = int(q.get("max_results", 50))
            if not 1 <= max_results <= 100:
                raise invalid("max_results must be between 1 and 100")
            numbers = self.stock(kind, q.get("areacode"))
            if "contains" in q:
                numbers = [n for n in numbers if q["contains"] in n[2:]]
            if "starts_with" in q:
                numbers = [n for n in numbers if n[2:].startswith(q["starts_with"])]
            if "ends_with" in q:
                numbers = [n for n in numbers if n.endswith(q["ends_with"])]
            data = [
                {
                    "number": n,
                    "region": "CA",
                    "city": "FAKEVILLE",
                    "rate_center": "FAKEVILLE",
                    "lata": "722",
                    "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
                }
                for n in numbers[:max_results]
            ]
            return JSONResponse({"links": {"self": str(request.url)}, "data": data})

        return await self._run(request, "search", go)

    async def purchase(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            body = await self._json(request)
            self.log(request, "buy", body=body)
            number = body.get("number")
            if set(body) - {"number"}:
                raise simple(400)
            if not isinstance(number, str) or not number:
                raise invalid("Number can't be blank")
            with self.lock:
                if not self.offered(number):
                    raise invalid(None)
                resource = self._resource(number)
                self.numbers[resource["id"]] = resource
                self.purchases.append(number)
                return JSONResponse(dict(resource))

        return await self._run(request, "buy", go)

    async def list_numbers(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, LIST_PARAMS)
            self.log(request, "list")
            q = request.query_params
            size = int(q.get("page_size", 50))
            if not 1 <= size <= 1000:
                raise invalid("page_size must be between 1 and 1000")
            page = int(q.get("page_number", 0))
            offset = 0
            if page:
                token = q.get("page_token", "")
                if not token.startswith("PA") or not token[2:].isdigit():
                    raise invalid("page_token is required when page_number > 0")
                offset = int(token[2:])
            with self.lock:
                # Newest first, as documented.
                rows = sorted(self.numbers.values(), key=lambda n: n["created_at"], reverse=True)
            if "filter_number" in q:
                rows = [n for n in rows if q["filter_number"] in n["number"]]
            if "filter_name" in q:
                rows = [n for n in rows if q["filter_name"] in (n["name"] or "")]
            chunk = rows[offset : offset + size]
            parts = urlsplit(str(request.url))
            base = f"{parts.scheme}://{parts.netloc}{parts.path}"
            keep = {k: v for k, v in q.items() if k not in ("page_number", "page_token", "page_size")}

            def link(page_no: int, off: int) -> str:
                params: dict[str, Any] = {**keep, "page_number": page_no, "page_size": size}
                if page_no:
                    params["page_token"] = f"PA{off}"
                return f"{base}?{urlencode(params)}"

            links = {"self": str(request.url), "first": link(0, 0)}
            if offset + size < len(rows):
                links["next"] = link(page + 1, offset + size)
            if page:
                links["prev"] = link(page - 1, max(0, offset - size))
            return JSONResponse({"links": links, "data": [dict(n) for n in chunk]})

        return await self._run(request, "list", go)

    def _owned(self, request: Request) -> dict[str, Any]:
        resource = self.numbers.get(request.path_params["id"])
        if resource is None:
            raise simple(404)
        return resource

    async def get_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "fetch")
            return JSONResponse(dict(self._owned(request)))

        return await self._run(request, "fetch", go)

    async def update_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            body = await self._json(request)
            self.log(request, "update", body=body)
            for key, value in body.items():
                if key not in UPDATE_FIELDS:
                    raise invalid(f"{key} is not a phone number attribute")
                if key in URL_FIELDS and value is not None:
                    parts = urlsplit(str(value))
                    if parts.scheme not in ("http", "https") or not parts.netloc:
                        raise invalid(f"{key} is not a valid URL")
                if key in METHOD_FIELDS and value not in ("GET", "POST"):
                    raise invalid(f"{key} must be GET or POST")
            if "call_handler" in body and body["call_handler"] not in CALL_HANDLERS:
                raise invalid("Call handler is not included in the list")
            if "message_handler" in body and body["message_handler"] not in MESSAGE_HANDLERS:
                raise invalid("Message handler is not included in the list")
            if body.get("call_handler") == "laml_webhooks" and not body.get("call_request_url"):
                raise invalid("Call request url can't be blank")
            with self.lock:
                resource = self._owned(request)
                resource.update(body)
                resource["updated_at"] = _now()
                return JSONResponse(dict(resource))

        return await self._run(request, "update", go)

    async def delete_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "release")
            with self.lock:
                resource = self._owned(request)
                del self.numbers[resource["id"]]
            return Response(status_code=204)

        return await self._run(request, "release", go)

    async def import_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            body = await self._json(request)
            self.log(request, "import", body=body)
            number = body.get("number")
            if not isinstance(number, str) or not number.startswith("+") or not 5 <= len(number) <= 30:
                raise invalid("Number is invalid")
            if body.get("number_type") not in ("longcode", "tollfree"):
                raise invalid("Number type can't be blank")
            caps = body.get("capabilities", ["sms", "voice", "fax", "mms"])
            if not isinstance(caps, list) or not caps or set(caps) - {"sms", "voice", "fax", "mms"}:
                raise invalid("Capabilities are invalid")
            with self.lock:
                if self.by_number(number) is not None:
                    raise invalid("Number has already been taken")
                resource = self._resource(number)
                resource["capabilities"] = list(caps)
                self.numbers[resource["id"]] = resource
                return JSONResponse(dict(resource), status_code=201)

        return await self._run(request, "import", go)

    def _resource(self, number: str) -> dict[str, Any]:
        now = _now()
        resource: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "number": number,
            "name": None,
            "capabilities": ["voice", "sms", "mms", "fax"],
            "number_type": "toll-free" if number[2:5] in TOLL_FREE else "longcode",
            "country_code": "US",
            "e911_address_id": None,
            "e911_status": None,
            "created_at": now,
            "updated_at": now,
            "next_billed_at": None,
            "call_handler": None,
            "calling_handler_resource_id": None,
            "call_receive_mode": "voice",
            "message_handler": None,
            "messaging_handler_resource_id": None,
        }
        for key in sorted(UPDATE_FIELDS):
            if key not in resource:
                resource[key] = None
        for key in METHOD_FIELDS:
            resource[key] = "POST"
        return resource
