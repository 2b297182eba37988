"""One key, three presentations; revoked keys fail at once; foreign ids look missing."""

from __future__ import annotations

import base64

import httpx
import pytest

from numberplane.kernel.db import Actor, Database
from numberplane.tenancy import service as tenancy
from numberplane.tenancy.models import ApiKey
from tests.support import OrgCreds


async def test_bearer_key_headers_and_basic_all_work(client: httpx.AsyncClient, org: OrgCreds) -> None:
    basic = "Basic " + base64.b64encode(f"{org.key_id}:{org.secret}".encode()).decode()
    for headers in (org.bearer, org.key_headers, {"Authorization": basic}):
        response = await client.get("/v1/phone-numbers", headers=headers)
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["data"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic !!!"},
        {"X-API-KEY": "key_0000"},
    ],
)
async def test_missing_or_malformed_credentials_are_401_problems(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/v1/agents", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "unauthorized" and body["status"] == 401
    assert "WWW-Authenticate" in response.headers


async def test_wrong_secret_is_401(client: httpx.AsyncClient, org: OrgCreds) -> None:
    response = await client.get("/v1/agents", headers={"Authorization": f"Bearer {org.key_id}.wrong"})
    assert response.status_code == 401
    response = await client.get("/v1/agents", headers={"X-API-KEY": org.key_id, "X-API-SECRET": "wrong"})
    assert response.status_code == 401


async def test_revoked_key_fails_at_once(client: httpx.AsyncClient, db: Database, org: OrgCreds) -> None:
    assert (await client.get("/v1/agents", headers=org.bearer)).status_code == 200
    async with db.uow(Actor.cli()) as uow:
        await tenancy.revoke_key(uow=uow, key_id=org.key_id)
        await uow.commit()
    assert (await client.get("/v1/agents", headers=org.bearer)).status_code == 401
    assert (await client.get("/v1/agents", headers=org.key_headers)).status_code == 401


async def test_secret_is_stored_hashed_only(db: Database, org: OrgCreds) -> None:
    async with db.session() as session:
        key = await session.get(ApiKey, org.key_id)
    assert key is not None
    assert org.secret not in key.secret_hash
    assert key.secret_hash == tenancy.hash_secret(org.secret)
    assert len(key.secret_hash) == 64


async def test_a_second_key_of_the_same_org_sees_the_same_data(
    client: httpx.AsyncClient, db: Database, org: OrgCreds
) -> None:
    created = await client.post("/v1/agents", json={"name": "Shared"}, headers=org.bearer)
    async with db.uow(Actor.cli(org.org_id)) as uow:
        key = await tenancy.create_key(uow=uow, org_id=org.org_id)
        await uow.commit()
    response = await client.get(
        f"/v1/agents/{created.json()['id']}", headers={"Authorization": f"Bearer {key.token}"}
    )
    assert response.status_code == 200


async def test_foreign_resources_answer_exactly_like_missing_ones(
    client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, area_codes
) -> None:
    agent = (await client.post("/v1/agents", json={"name": "Mine"}, headers=org.bearer)).json()
    bought = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    assert bought.status_code == 201
    number = bought.json()

    def strip(body: dict) -> dict:
        return {k: v for k, v in body.items() if k not in ("detail", "instance", "request_id")}

    missing_agent = await client.get(
        "/v1/agents/01a00000-0000-7000-8000-000000000000", headers=other_org.bearer
    )
    foreign_agent = await client.get(f"/v1/agents/{agent['id']}", headers=other_org.bearer)
    assert foreign_agent.status_code == missing_agent.status_code == 404
    assert strip(foreign_agent.json()) == strip(missing_agent.json())

    for ref in (number["id"], number["phone_number"]):
        for method in ("GET", "PATCH", "DELETE"):
            kwargs = {"json": {"name": "x"}} if method == "PATCH" else {}
            foreign = await client.request(
                method, f"/v1/phone-numbers/{ref}", headers=other_org.bearer, **kwargs
            )
            assert foreign.status_code == 404, (method, ref, foreign.text)
            assert foreign.json()["code"] == "phone_number_not_found"
    listed = await client.get("/v1/phone-numbers", headers=other_org.bearer)
    assert number["id"] not in [n["id"] for n in listed.json()["data"]]
    # Nothing was changed by the foreign calls.
    mine = await client.get(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)
    assert mine.json()["status"] == "active" and mine.json()["name"] is None
