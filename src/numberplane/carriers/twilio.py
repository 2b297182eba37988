"""Twilio: AvailablePhoneNumbers and IncomingPhoneNumbers (REST API 2010-04-01).

Form-encoded requests, JSON responses, HTTP Basic auth with the account SID and auth token, or
an API key SID and secret (the account SID still names the account in every path). Twilio has
no customer-reference field on a purchase, so a purchase whose response was lost is resolved
by ``find``: ``IncomingPhoneNumbers.json?PhoneNumber=<e164>`` on the same account.

Error codes used: 20003 authenticate, 20404 not found, 21422 number not available,
21452 no numbers found in the area code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from numberplane.carriers.base import (
    AvailableNumber,
    CarrierAuthError,
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

API_VERSION = "2010-04-01"
SEARCH_TYPES = {"local": "Local", "toll_free": "TollFree", "mobile": "Mobile"}
NUMBER_UNAVAILABLE = {21422}
NO_NUMBERS = {21452}
PAGE_SIZE = 1000
MAX_FRIENDLY_NAME = 64


class TwilioCarrier(HttpCarrier):
    carrier = "twilio"
    display = "Twilio"
    default_base_url = "https://api.twilio.com"

    def __init__(self, *, account: CarrierAccount, credentials: dict[str, Any], db: Any = None) -> None:
        super().__init__(account=account, credentials=credentials, db=db)
        self.account_sid = str(self.config.get("account_sid") or credentials.get("account_sid") or "")
        key_sid = self.config.get("api_key_sid") or credentials.get("api_key_sid")
        key_secret = credentials.get("api_key_secret")
        self._token_auth = httpx.BasicAuth(self.account_sid, str(credentials.get("auth_token") or ""))
        self._uses_api_key = bool(key_sid and key_secret)
        if self._uses_api_key:
            self._auth = httpx.BasicAuth(str(key_sid), str(key_secret))
        else:
            self._auth = self._token_auth

    def auth(self) -> httpx.Auth:
        return self._auth

    def _path(self, rest: str = "") -> str:
        sid = quote(self.account_sid, safe="")
        return f"{API_VERSION}/Accounts/{sid}{rest}"

    def error_message(self, response: httpx.Response) -> str:
        body = self.body(response)
        if isinstance(body, dict) and body.get("message"):
            code = body.get("code")
            return f"{code}: {body['message']}" if code else str(body["message"])
        return f"HTTP {response.status_code}"

    def _code(self, response: httpx.Response) -> int | None:
        body = self.body(response)
        if isinstance(body, dict):
            try:
                return int(body.get("code"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return None
        return None

    # -- the interface --------------------------------------------------------------------
    async def verify_credentials(self) -> None:
        """Prove the credentials own the account SID: Twilio answers the account's own resource
        only to its credentials (or its parent's). The auth token signs Twilio's webhooks, so
        when an API key does the REST work the token is checked too (a second call)."""
        await self._check_account(self._auth)
        if self._uses_api_key and self.credentials.get("auth_token"):
            await self._check_account(self._token_auth, what="the auth_token")

    async def _check_account(self, auth: httpx.Auth, what: str = "these credentials") -> None:
        try:
            response = await self.request("GET", self._path(".json"), auth=auth)
        except CarrierAuthError as exc:
            if auth is self._auth:
                raise
            raise CarrierAuthError(
                f"Twilio rejected {what} of account {self.account_sid}", carrier=self.carrier
            ) from exc
        if response.status_code == 404:
            raise CarrierAuthError(
                f"Twilio has no account {self.account_sid} visible to {what}",
                carrier=self.carrier,
            )
        if response.status_code >= 400:
            raise CarrierAuthError(
                f"Twilio did not accept {what} ({self.said(response)})",
                carrier=self.carrier,
            )
        body = self.body(response)
        if not isinstance(body, dict) or body.get("sid") != self.account_sid:
            raise CarrierAuthError(
                f"Twilio did not confirm account {self.account_sid} for {what}", carrier=self.carrier
            )

    async def search(self, query: SearchQuery) -> list[AvailableNumber]:
        kind = SEARCH_TYPES.get(query.number_type)
        if kind is None:
            raise CarrierRejected(
                f"Twilio searches local, toll_free or mobile numbers, not {query.number_type}",
                carrier=self.carrier,
            )
        country = query.country.upper()
        params: dict[str, Any] = {"PageSize": max(1, min(query.limit, 100))}
        if query.area_code:
            params["AreaCode"] = query.area_code
        if query.contains:
            params["Contains"] = query.contains
        response = await self.request(
            "GET", self._path(f"/AvailablePhoneNumbers/{quote(country, safe='')}/{kind}.json"), params=params
        )
        if response.status_code == 404:
            raise CarrierRejected(
                f"Twilio has no {query.number_type} numbers for country {country}", carrier=self.carrier
            )
        if response.status_code >= 400:
            if self._code(response) in NO_NUMBERS:
                raise self._none_left(query)
            raise self._rejected(response, "search")
        body = self.body(response) or {}
        out = [
            _available(item, country, query.number_type)
            for item in body.get("available_phone_numbers") or []
            if isinstance(item, dict) and item.get("phone_number")
        ]
        if not out:
            raise self._none_left(query)
        return out[: query.limit]

    def _none_left(self, query: SearchQuery) -> NoNumbersAvailable:
        where = f" in area code {query.area_code}" if query.area_code else ""
        return NoNumbersAvailable(
            f"Twilio has no {query.number_type} numbers available{where} ({query.country.upper()})",
            carrier=self.carrier,
        )

    async def buy(self, *, phone_number: str, reference: str, config: NumberConfig) -> CarrierNumber:
        form = {"PhoneNumber": phone_number, **_config_form(config)}
        response = await self.request("POST", self._path("/IncomingPhoneNumbers.json"), data=form)
        if response.status_code in (200, 201):
            return self._number(self.body(response))
        code = self._code(response)
        if code in NUMBER_UNAVAILABLE:
            raise NumberUnavailable(
                f"{phone_number} is no longer available at Twilio ({self.said(response)})",
                carrier=self.carrier,
            )
        if code in NO_NUMBERS:
            raise NoNumbersAvailable(
                f"Twilio has no numbers available ({self.said(response)})", carrier=self.carrier
            )
        raise self._rejected(response, f"buy {phone_number}")

    async def find(self, *, phone_number: str, reference: str | None = None) -> CarrierNumber | None:
        params = {"PhoneNumber": phone_number, "PageSize": 50}
        response = await self.request("GET", self._path("/IncomingPhoneNumbers.json"), params=params)
        if response.status_code >= 400:
            raise self._rejected(response, f"look up {phone_number}")
        for item in (self.body(response) or {}).get("incoming_phone_numbers") or []:
            if isinstance(item, dict) and item.get("phone_number") == phone_number:
                return self._number(item)
        return None

    async def configure(self, *, carrier_number_id: str, config: NumberConfig) -> CarrierNumber:
        response = await self.request(
            "POST",
            self._path(f"/IncomingPhoneNumbers/{quote(carrier_number_id, safe='')}.json"),
            data=_config_form(config),
        )
        if response.status_code == 404:
            raise CarrierNotFound(
                f"Twilio number {carrier_number_id} is not held by account {self.account_sid}",
                carrier=self.carrier,
            )
        if response.status_code >= 400:
            raise self._rejected(response, f"update {carrier_number_id}")
        return self._number(self.body(response))

    async def release(self, *, carrier_number_id: str) -> None:
        response = await self.request(
            "DELETE", self._path(f"/IncomingPhoneNumbers/{quote(carrier_number_id, safe='')}.json")
        )
        if response.status_code in (200, 204, 404):
            return
        raise self._rejected(response, f"release {carrier_number_id}")

    async def list_owned(self) -> AsyncIterator[CarrierNumber]:
        path: str | None = self._path("/IncomingPhoneNumbers.json")
        params: dict[str, Any] | None = {"PageSize": self.page_size or PAGE_SIZE}
        for _ in range(self.max_pages):
            if path is None:
                return
            response = await self.request("GET", path, params=params)
            if response.status_code >= 400:
                raise self._rejected(response, "list the account's numbers")
            body = self.body(response) or {}
            for item in body.get("incoming_phone_numbers") or []:
                if isinstance(item, dict) and item.get("sid"):
                    yield self._number(item)
            # next_page_uri is host-relative and carries its own query (PageToken).
            path, params = body.get("next_page_uri") or None, None
        if path is not None:
            raise CarrierRejected(
                f"Twilio account {self.account_sid} has more than {self.max_pages} pages of numbers; "
                "raise max_pages in the account config",
                carrier=self.carrier,
            )

    def _number(self, item: Any) -> CarrierNumber:
        if not isinstance(item, dict) or not item.get("sid") or not item.get("phone_number"):
            raise CarrierRejected("Twilio answered with an unexpected body", carrier=self.carrier)
        caps = item.get("capabilities")
        return CarrierNumber(
            carrier_number_id=str(item["sid"]),
            phone_number=str(item["phone_number"]),
            voice_url=item.get("voice_url") or None,
            sms_url=item.get("sms_url") or None,
            reference=None,
            status="active",
            capabilities=_caps(caps) if isinstance(caps, dict) else None,
        )


def _config_form(config: NumberConfig) -> dict[str, str]:
    """Twilio's fields for what Numberplane owns. ``None`` leaves a field as the carrier has it."""
    form: dict[str, str] = {}
    if config.voice_url is not None:
        form["VoiceUrl"] = config.voice_url
        form["VoiceMethod"] = "POST"
    if config.voice_fallback_url is not None:
        form["VoiceFallbackUrl"] = config.voice_fallback_url
        form["VoiceFallbackMethod"] = "POST"
    if config.status_callback_url is not None:
        form["StatusCallback"] = config.status_callback_url
        form["StatusCallbackMethod"] = "POST"
    if config.sms_url is not None:
        form["SmsUrl"] = config.sms_url
        form["SmsMethod"] = "POST"
    if config.friendly_name:
        form["FriendlyName"] = config.friendly_name[:MAX_FRIENDLY_NAME]
    return form


def _caps(raw: dict[str, Any]) -> dict[str, bool]:
    lowered = {str(k).lower(): bool(v) for k, v in raw.items()}
    return {k: lowered.get(k, False) for k in ("voice", "sms", "mms", "fax")}


def _available(item: dict[str, Any], country: str, number_type: str) -> AvailableNumber:
    number = str(item["phone_number"])
    try:
        parsed: e164.ParsedNumber | None = e164.parse(number)
    except e164.InvalidPhoneNumber:
        parsed = None
    caps = item.get("capabilities")
    return AvailableNumber(
        phone_number=number,
        country=str(item.get("iso_country") or country),
        number_type=number_type,
        area_code=parsed.area_code if parsed else None,
        locality=item.get("locality") or None,
        region=item.get("region") or None,
        capabilities=_caps(caps) if isinstance(caps, dict) else {"voice": True, "sms": False},
    )
