"""Small helpers shared by the dialect tests: agents and numbers made through /v1."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import OrgCreds


async def make_agent(http: httpx.AsyncClient, org: OrgCreds, name: str = "Agent", **fields: Any) -> dict:
    response = await http.post("/v1/agents", json={"name": name, **fields}, headers=org.bearer)
    assert response.status_code == 201, response.text
    return response.json()


async def v1_buy(http: httpx.AsyncClient, org: OrgCreds, area: str, **fields: Any) -> dict:
    response = await http.post("/v1/phone-numbers", json={"area_code": area, **fields}, headers=org.bearer)
    assert response.status_code == 201, response.text
    return response.json()


async def v1_get(http: httpx.AsyncClient, org: OrgCreds, ref: str) -> dict:
    response = await http.get(f"/v1/phone-numbers/{ref}", headers=org.bearer)
    assert response.status_code == 200, response.text
    return response.json()


async def v1_count(http: httpx.AsyncClient, org: OrgCreds) -> int:
    response = await http.get("/v1/phone-numbers", params={"limit": 1000}, headers=org.bearer)
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


async def connect_twilio(
    http: httpx.AsyncClient, org: OrgCreds, fake: Any, *, default: bool = False, name: str = "Twilio"
) -> dict:
    """The org's Twilio account, checked at the fake the ``fake_twilio`` fixture points Twilio at."""
    body = {
        "carrier": "twilio",
        "name": name,
        "credentials": {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
        "make_default": default,
    }
    response = await http.post("/v1/carrier-accounts", json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    return response.json()


async def connect_telnyx(http: httpx.AsyncClient, org: OrgCreds, fake: Any, *, default: bool = False) -> dict:
    body = {
        "carrier": "telnyx",
        "name": "Telnyx",
        "credentials": {"api_key": fake.api_key, "texml_application_id": fake.texml_application_id},
        "make_default": default,
    }
    response = await http.post("/v1/carrier-accounts", json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    return response.json()
