"""A fake Vonage Account API: ``GET /account/get-balance``, the one call Numberplane makes to Vonage.

Contract enforced (Vonage's Account API reference and code snippets, carriers.md §3):
- Credentials as HTTP Basic ``api_key:api_secret`` (what the current SDKs and the docs' curl use)
  or as ``api_key`` and ``api_secret`` query parameters (the spec's other scheme); anything else
  is 401 ``{"error-code": "401", "error-code-label": "authentication failed"}``.
- Only GET; no other query parameters.
- 200 ``{"value": <balance in EUR>, "autoReload": <bool>}``.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import FakeCarrier, hang


class FakeVonage(FakeCarrier):
    def __init__(self) -> None:
        super().__init__()
        self.api_key = secrets.token_hex(4)
        self.api_secret = secrets.token_urlsafe(12)
        self.balance = 10.28

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/account/get-balance", self.get_balance, methods=["GET"])])

    def books(self) -> dict[str, dict[str, Any]]:
        return {}

    def by_number(self, phone_number: str) -> dict[str, Any] | None:
        return None

    @staticmethod
    def error(status: int, label: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(
            {"error-code": str(status), "error-code-label": label}, status_code=status, headers=headers
        )

    def _credentials(self, request: Request) -> tuple[str, str]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            return user, password
        query = request.query_params
        return query.get("api_key", ""), query.get("api_secret", "")

    async def get_balance(self, request: Request) -> Response:
        unknown = set(request.query_params) - {"api_key", "api_secret"}
        api_key, api_secret = self._credentials(request)
        if api_key != self.api_key or api_secret != self.api_secret:
            self.log(request, "balance", error="401")
            return self.error(401, "authentication failed")
        if unknown:
            self.log(request, "balance", error="400")
            return self.error(400, f"unknown parameter {sorted(unknown)[0]}")
        fault = self.faults.take("balance")
        if fault is not None and fault.kind == "status":
            self.log(request, "balance", fault=f"status {fault.status}")
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return self.error(fault.status, fault.message or "internal error", headers)
        if fault is not None and fault.kind == "timeout":
            self.log(request, "balance", fault="timeout")
            await hang(request, self.hang_seconds)
            return self.error(504, "timeout")
        self.log(request, "balance")
        return JSONResponse({"value": self.balance, "autoReload": False})
