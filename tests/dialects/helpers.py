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
