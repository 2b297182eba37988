"""A fake Twilio REST API (2010-04-01): Accounts, AvailablePhoneNumbers, IncomingPhoneNumbers.

Contract enforced (from Twilio's OpenAPI, twilio-api-v2010.json, and its docs):
- HTTP Basic auth: account SID + auth token, or API key SID + secret; else 401 code 20003.
- The AccountSid in the path must be the authenticated account (else 404 code 20404).
- Query parameters and form fields must be ones the spec lists for that operation (typos fail
  with 400 code 20001, where real Twilio would silently ignore them); writes must be
  ``application/x-www-form-urlencoded``; URL fields absolute http(s); methods GET or POST.
- Responses: the spec's resource and list-envelope shapes, RFC 2822 dates, 201 on create,
  204 on delete, errors as ``{code, message, more_info, status}``.
- Inventory: US/CA local and toll-free numbers, ``+1 <area> 555 01NN``. Buying a number not
  on offer (taken, sold out, already yours) is 400 code 21422; buying by AreaCode with none
  left is 400 code 21452; a search with none left returns an empty list.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import FakeCarrier, hang

API = "/2010-04-01"
TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
SEARCH_PARAMS = {
    "AreaCode",
    "Contains",
    "SmsEnabled",
    "MmsEnabled",
    "VoiceEnabled",
    "ExcludeAllAddressRequired",
    "ExcludeLocalAddressRequired",
    "ExcludeForeignAddressRequired",
    "Beta",
    "NearNumber",
    "NearLatLong",
    "Distance",
    "InPostalCode",
    "InRegion",
    "InRateCenter",
    "InLata",
    "InLocality",
    "FaxEnabled",
    "PageSize",
    "Page",
    "PageToken",
}
LIST_PARAMS = {"Beta", "FriendlyName", "PhoneNumber", "Origin", "PageSize", "Page", "PageToken"}
UPDATE_FIELDS = {
    "AccountSid",
    "ApiVersion",
    "FriendlyName",
    "SmsApplicationSid",
    "SmsFallbackMethod",
    "SmsFallbackUrl",
    "SmsMethod",
    "SmsUrl",
    "StatusCallback",
    "StatusCallbackMethod",
    "VoiceApplicationSid",
    "VoiceCallerIdLookup",
    "VoiceFallbackMethod",
    "VoiceFallbackUrl",
    "VoiceMethod",
    "VoiceUrl",
    "EmergencyStatus",
    "EmergencyAddressSid",
    "TrunkSid",
    "VoiceReceiveMode",
    "IdentitySid",
    "AddressSid",
    "BundleSid",
}
CREATE_FIELDS = (UPDATE_FIELDS - {"AccountSid"}) | {"PhoneNumber", "AreaCode"}
URL_FIELDS = {"SmsFallbackUrl", "SmsUrl", "StatusCallback", "VoiceFallbackUrl", "VoiceUrl"}
METHOD_FIELDS = {
    "SmsFallbackMethod",
    "SmsMethod",
    "StatusCallbackMethod",
    "VoiceFallbackMethod",
    "VoiceMethod",
}
FIELD_TO_ATTR = {
    "FriendlyName": "friendly_name",
    "SmsApplicationSid": "sms_application_sid",
    "SmsFallbackMethod": "sms_fallback_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsMethod": "sms_method",
    "SmsUrl": "sms_url",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "VoiceFallbackMethod": "voice_fallback_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceMethod": "voice_method",
    "VoiceUrl": "voice_url",
    "TrunkSid": "trunk_sid",
    "VoiceReceiveMode": "voice_receive_mode",
    "EmergencyStatus": "emergency_status",
    "EmergencyAddressSid": "emergency_address_sid",
    "IdentitySid": "identity_sid",
    "AddressSid": "address_sid",
    "BundleSid": "bundle_sid",
}
DEFAULT_CODES = {429: 20429, 500: 20500, 502: 20500, 503: 20503, 504: 20504}


def rfc2822(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.UTC)).replace("-0000", "+0000")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _valid_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class FakeTwilio(FakeCarrier):
    id_field = "sid"

    def __init__(self) -> None:
        super().__init__()
        self.account_sid = _sid("AC")
        self.auth_token = secrets.token_hex(16)
        self.api_key_sid = _sid("SK")
        self.api_key_secret = secrets.token_urlsafe(24)
        self.owned: dict[str, dict[str, Any]] = {}  # sid -> IncomingPhoneNumber resource
        self.taken: set[str] = set()  # bought by someone else: searchable never, buyable never
        self.sold_out: set[str] = set()  # area codes with no stock
        self.per_area = 20
        self.peers: dict[str, FakeTwilio] = {}  # other accounts served at this API

    def add_account(self) -> FakeTwilio:
        """Another Twilio account at the same API, as Twilio serves many: its own credentials,
        books and request log. Requests for its AccountSid reach it through this fake's server."""
        peer = FakeTwilio()
        peer._url = self.url
        self.peers[peer.account_sid] = peer
        return peer

    def _dispatch(self, name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            target = self.peers.get(request.path_params.get("account_sid", ""), self)
            response: Response = await getattr(target, name)(request)
            return response

        return endpoint

    # -- books ------------------------------------------------------------------------------
    def books(self) -> dict[str, dict[str, Any]]:
        return self.owned

    def owned_numbers(self) -> set[str]:
        with self.lock:
            return {r["phone_number"] for r in self.owned.values()}

    def by_number(self, phone_number: str) -> dict[str, Any] | None:
        with self.lock:
            for r in self.owned.values():
                if r["phone_number"] == phone_number:
                    return r
        return None

    def stock(self, country: str, kind: str, area: str | None) -> list[str]:
        if country not in ("US", "CA"):
            return []
        if kind == "TollFree":
            areas = [area] if area else list(TOLL_FREE)
            if area and area not in TOLL_FREE:
                return []
        else:
            areas = [area] if area else ["415", "212", "312"]
            if area in TOLL_FREE:
                return []
        held = self.owned_numbers() | self.taken
        out: list[str] = []
        for code in areas:
            if code is None or code in self.sold_out:
                continue
            for line in range(100, 100 + self.per_area):
                number = f"+1{code}5550{line:03d}"
                parsed = phonenumbers.parse(number)
                if not phonenumbers.is_valid_number(parsed):
                    continue
                if phonenumbers.region_code_for_number(parsed) != country:
                    continue
                if number not in held:
                    out.append(number)
        return out

    def offered(self, phone_number: str) -> bool:
        try:
            parsed = phonenumbers.parse(phone_number)
        except phonenumbers.NumberParseException:
            return False
        country = phonenumbers.region_code_for_number(parsed) or ""
        national = str(parsed.national_number)
        area = national[:3]
        kind = "TollFree" if area in TOLL_FREE else "Local"
        return phone_number in self.stock(country, kind, area)

    def add_owned(self, phone_number: str, **fields: Any) -> dict[str, Any]:
        """A number on this account that Numberplane did not buy (drift tests)."""
        with self.lock:
            resource = self._resource(phone_number, {})
            resource.update(fields)
            self.owned[resource["sid"]] = resource
            return resource

    # -- the app ----------------------------------------------------------------------------
    def app(self) -> Starlette:
        base = f"{API}/Accounts/{{account_sid}}"
        number = f"{base}/IncomingPhoneNumbers/{{sid}}.json"
        routes = [
            Route(f"{base}.json", self._dispatch("fetch_account"), methods=["GET"]),
            Route(f"{base}/AvailablePhoneNumbers/{{country}}/{{kind}}.json", self._dispatch("search")),
            Route(f"{base}/IncomingPhoneNumbers.json", self._dispatch("list_numbers"), methods=["GET"]),
            Route(f"{base}/IncomingPhoneNumbers.json", self._dispatch("create_number"), methods=["POST"]),
            Route(number, self._dispatch("fetch_number"), methods=["GET"]),
            Route(number, self._dispatch("update_number"), methods=["POST"]),
            Route(number, self._dispatch("delete_number"), methods=["DELETE"]),
        ]
        return Starlette(routes=routes)

    @staticmethod
    def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return JSONResponse(body, status_code=status, headers=headers)

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
        ok = (user == self.account_sid and password == self.auth_token) or (
            user == self.api_key_sid and password == self.api_key_secret
        )
        if not ok:
            raise TwilioError(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if request.path_params.get("account_sid") != self.account_sid:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")

    async def _run(self, request: Request, op: str, handler: Any) -> Response:
        await request.body()  # read it first: a hang then notices the client leaving
        try:
            self._authenticate(request)
            fault = self.faults.take(op)
            if fault is not None and fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                code = fault.code or DEFAULT_CODES.get(fault.status, 20001)
                self.log(request, op, fault=f"status {fault.status}")
                return self.error(fault.status, code, fault.message or "Injected failure", headers)
            if fault is not None and fault.kind == "timeout":
                self.log(request, op, fault="timeout")
                await hang(request, self.hang_seconds)
                return self.error(504, 20504, "Gateway timeout")
            response: Response = await handler(request)
            if fault is not None and fault.kind == "lose_response":
                self.log(request, op, fault="lose_response")
                await hang(request, self.hang_seconds)
            return response
        except TwilioError as exc:
            self.log(request, op, error=exc.code)
            return self.error(exc.status, exc.code, exc.message, exc.headers)

    def _check_query(self, request: Request, allowed: set[str]) -> None:
        for key in request.query_params:
            if key not in allowed:
                raise TwilioError(400, 20001, f"Unknown query parameter {key}")

    async def _form(self, request: Request, allowed: set[str]) -> dict[str, str]:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            raise TwilioError(400, 20001, "Requests must be application/x-www-form-urlencoded")
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise TwilioError(400, 20001, "The body is not UTF-8") from exc
        out: dict[str, str] = {}
        for key, value in pairs:
            if key not in allowed:
                raise TwilioError(400, 20001, f"Unknown parameter {key}")
            if key in URL_FIELDS and value and not _valid_url(value):
                raise TwilioError(400, 21502, f"{key} is not a valid URL: {value}")
            if key in METHOD_FIELDS and value.upper() not in ("GET", "POST"):
                raise TwilioError(400, 21403, f"{key} must be GET or POST")
            out[key] = value
        return out

    # -- handlers ---------------------------------------------------------------------------
    async def fetch_account(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "account")
            now = rfc2822(dt.datetime.now(dt.UTC))
            return JSONResponse(
                {
                    "auth_token": "[redacted]",
                    "date_created": now,
                    "date_updated": now,
                    "friendly_name": "Fake Twilio account",
                    "owner_account_sid": self.account_sid,
                    "sid": self.account_sid,
                    "status": "active",
                    "subresource_uris": {},
                    "type": "Full",
                    "uri": f"{API}/Accounts/{self.account_sid}.json",
                }
            )

        return await self._run(request, "account", go)

    async def search(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, SEARCH_PARAMS)
            self.log(request, "search")
            country = request.path_params["country"]
            kind = request.path_params["kind"]
            if kind not in ("Local", "TollFree", "Mobile", "National", "Voip", "SharedCost"):
                raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
            if country not in ("US", "CA") or kind not in ("Local", "TollFree"):
                raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
            q = request.query_params
            area = q.get("AreaCode")
            if area is not None and not (area.isdigit() and len(area) == 3):
                raise TwilioError(400, 21451, f"Invalid AreaCode {area}")
            size = _page_size(q.get("PageSize"), default=50)
            numbers = self.stock(country, kind, area)
            if q.get("Contains"):
                pattern = q["Contains"].replace("*", "")
                numbers = [n for n in numbers if pattern in n]
            items = [_available(n, country) for n in numbers[:size]]
            return JSONResponse(
                {
                    "available_phone_numbers": items,
                    "uri": f"{request.url.path}?{request.url.query}"
                    if request.url.query
                    else request.url.path,
                }
            )

        return await self._run(request, "search", go)

    async def create_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            form = await self._form(request, CREATE_FIELDS)
            self.log(request, "buy", form=form)
            number = form.get("PhoneNumber")
            area = form.get("AreaCode")
            if not number and not area:
                raise TwilioError(400, 21450, "A 'PhoneNumber' or an 'AreaCode' is required.")
            if form.get("VoiceFallbackUrl") and not form.get("VoiceUrl"):
                raise TwilioError(400, 21405, "Cannot set VoiceFallbackUrl without setting Url")
            with self.lock:
                if not number:
                    stock = self.stock("US", "TollFree" if area in TOLL_FREE else "Local", area)
                    if not stock:
                        raise TwilioError(400, 21452, f"No phone numbers found in area code {area}")
                    number = stock[0]
                elif not self.offered(number):
                    raise TwilioError(400, 21422, f"PhoneNumber {number} is not available.")
                resource = self._resource(number, form)
                self.owned[resource["sid"]] = resource
                self.purchases.append(number)
            return JSONResponse(resource, status_code=201)

        return await self._run(request, "buy", go)

    async def list_numbers(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self._check_query(request, LIST_PARAMS)
            self.log(request, "list")
            q = request.query_params
            size = _page_size(q.get("PageSize"), default=50)
            page = int(q.get("Page") or 0)
            offset = 0
            if page:
                token = q.get("PageToken") or ""
                if not token.startswith("PT") or not token[2:].isdigit():
                    raise TwilioError(400, 20001, "PageToken is required to fetch a page other than 0")
                offset = int(token[2:])
            with self.lock:
                rows = sorted(self.owned.values(), key=lambda r: (r["_created"], r["sid"]))
            if q.get("PhoneNumber"):
                digits = "".join(ch for ch in q["PhoneNumber"] if ch.isdigit() or ch == "*").replace("*", "")
                rows = [r for r in rows if digits in r["phone_number"]]
            if q.get("FriendlyName"):
                rows = [r for r in rows if r["friendly_name"] == q["FriendlyName"]]
            chunk = rows[offset : offset + size]
            path = request.url.path
            keep = {k: v for k, v in q.items() if k not in ("Page", "PageToken", "PageSize")}

            def uri(page_no: int, off: int | None) -> str:
                params = {**keep, "PageSize": size, "Page": page_no}
                if off is not None:
                    params["PageToken"] = f"PT{off}"
                return f"{path}?{urlencode(params)}"

            more = offset + size < len(rows)
            return JSONResponse(
                {
                    "end": offset + max(len(chunk) - 1, 0),
                    "first_page_uri": uri(0, None),
                    "incoming_phone_numbers": [_public(r) for r in chunk],
                    "next_page_uri": uri(page + 1, offset + size) if more else None,
                    "page": page,
                    "page_size": size,
                    "previous_page_uri": uri(page - 1, max(offset - size, 0)) if page else None,
                    "start": offset,
                    "uri": uri(page, offset if page else None),
                }
            )

        return await self._run(request, "list", go)

    def _owned(self, request: Request) -> dict[str, Any]:
        resource = self.owned.get(request.path_params["sid"])
        if resource is None:
            raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        return resource

    async def fetch_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "fetch")
            return JSONResponse(_public(self._owned(request)))

        return await self._run(request, "fetch", go)

    async def update_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            form = await self._form(request, UPDATE_FIELDS)
            self.log(request, "update", form=form)
            with self.lock:
                resource = self._owned(request)
                if form.get("VoiceFallbackUrl") and not (form.get("VoiceUrl") or resource.get("voice_url")):
                    raise TwilioError(400, 21405, "Cannot set VoiceFallbackUrl without setting Url")
                for key, value in form.items():
                    attr = FIELD_TO_ATTR.get(key)
                    if attr:
                        resource[attr] = value.upper() if key in METHOD_FIELDS else value
                resource["date_updated"] = rfc2822(dt.datetime.now(dt.UTC))
                return JSONResponse(_public(resource))

        return await self._run(request, "update", go)

    async def delete_number(self, request: Request) -> Response:
        async def go(request: Request) -> Response:
            self.log(request, "release")
            with self.lock:
                resource = self._owned(request)
                del self.owned[resource["sid"]]
            return Response(status_code=204)

        return await self._run(request, "release", go)

    def _resource(self, number: str, form: dict[str, str]) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        sid = _sid("PN")
        parsed = phonenumbers.parse(number)
        pretty = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "address_requirements": "none",
            "address_sid": None,
            "api_version": "2010-04-01",
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": rfc2822(now),
            "date_updated": rfc2822(now),
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "friendly_name": pretty,
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": number,
            "sid": sid,
            "sms_application_sid": None,
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"{API}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json",
            "voice_receive_mode": "voice",
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": "",
            "voice_method": "POST",
            "voice_url": "",
            "bundle_sid": None,
            "status": "in-use",
            "type": "toll-free" if str(parsed.national_number)[:3] in TOLL_FREE else "local",
            "_created": now.timestamp(),
        }
        for key, value in form.items():
            attr = FIELD_TO_ATTR.get(key)
            if attr:
                resource[attr] = value.upper() if key in METHOD_FIELDS else value
        return resource


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _page_size(raw: str | None, *, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise TwilioError(400, 20001, "PageSize must be between 1 and 1000")
    return int(raw)


def _available(number: str, country: str) -> dict[str, Any]:
    parsed = phonenumbers.parse(number)
    return {
        "address_requirements": "none",
        "beta": False,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "friendly_name": phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
        "iso_country": country,
        "lata": "722",
        "latitude": 37.78,
        "locality": "Fakeville",
        "longitude": -122.39,
        "phone_number": number,
        "postal_code": "94105",
        "rate_center": "FAKEVILLE",
        "region": "CA",
    }
