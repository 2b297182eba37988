"""Vonage's account check: the one call Numberplane makes to Vonage (its accounts are routing-only).

``GET /account/get-balance`` with HTTP Basic ``api_key:api_secret`` (Vonage's Account API)
answers ``{"value": ..., "autoReload": ...}`` only to the owner of the API key, so a
registration proves the key it names, which is the ``api_key`` claim that identifies the account
in Vonage's signed webhooks. Numbers are never bought or configured here, so this adapter is not
in the registry: ``carriers.service.verify`` calls it directly.
"""

from __future__ import annotations

from typing import Any

import httpx

from numberplane.carriers.base import CarrierAuthError, CarrierRejected
from numberplane.carriers.http import HttpCarrier
from numberplane.carriers.models import CarrierAccount

BALANCE = "account/get-balance"


class VonageAccountCheck(HttpCarrier):
    carrier = "vonage"
    display = "Vonage"
    default_base_url = "https://rest.nexmo.com"

    def __init__(self, *, account: CarrierAccount, credentials: dict[str, Any], db: Any = None) -> None:
        super().__init__(account=account, credentials=credentials, db=db)
        self.api_key = str(self.config.get("api_key") or "")
        self._auth = httpx.BasicAuth(self.api_key, str(credentials.get("api_secret") or ""))

    def auth(self) -> httpx.Auth:
        return self._auth

    def error_message(self, response: httpx.Response) -> str:
        body = self.body(response)
        if isinstance(body, dict) and body.get("error-code-label"):
            return f"{body.get('error-code')}: {body['error-code-label']}"
        return f"HTTP {response.status_code}"

    async def verify_credentials(self) -> None:
        response = await self.request("GET", BALANCE)
        if response.status_code >= 400:
            raise CarrierAuthError(
                f"Vonage did not accept API key {self.api_key} ({self.said(response)})", carrier=self.carrier
            )
        body = self.body(response)
        if not isinstance(body, dict) or "value" not in body:
            raise CarrierRejected(
                "Vonage's balance check did not answer with an account balance", carrier=self.carrier
            )
