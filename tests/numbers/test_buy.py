"""Buying: by exact number or area code, idempotent, and race-safe across orgs."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from numberplane.carriers.models import SandboxNumber
from numberplane.kernel.db import Database
from numberplane.numbers.models import Order, PhoneNumber
from tests.fakes.vonage import FakeVonage
from tests.support import LiveServer, OrgCreds


async def test_search_then_buy_by_area_code(client: httpx.AsyncClient, org: OrgCreds, area_codes) -> None:
    area = area_codes.take()
    found = await client.get(
        "/v1/available-phone-numbers",
        headers=org.bearer,
        params={"country": "US", "area_code": area, "limit": 5},
    )
    assert found.status_code == 200
    offered = [n["phone_number"] for n in found.json()["data"]]
    assert len(offered) == 5 and all(n.startswith(f"+1{area}5550") for n in offered)

    bought = await client.post(
        "/v1/phone-numbers", json={"area_code": area, "name": "Main line"}, headers=org.bearer
    )
    assert bought.status_code == 201, bought.text
    number = bought.json()
    assert number["phone_number"] == offered[0]
    assert number["status"] == "active" and number["origin"] == "purchased" and number["carrier"] == "sandbox"
    assert number["area_code"] == area and number["country"] == "US" and number["number_type"] == "local"
    assert number["phone_number_pretty"].startswith(f"+1 ({area}) 555-")
    assert number["next_billed_at"] is not None and number["carrier_number_id"].startswith("SB")
    assert number["carrier_sync"]["voice_url"].endswith("/voice/twilio")

    again = await client.get(
        "/v1/available-phone-numbers",
        headers=org.bearer,
        params={"country": "US", "area_code": area, "limit": 5},
    )
    assert number["phone_number"] not in [n["phone_number"] for n in again.json()["data"]]


async def test_buy_exact_number_with_every_setting(
    client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    agent = (await client.post("/v1/agents", json={"name": "In"}, headers=org.bearer)).json()
    agent2 = (await client.post("/v1/agents", json={"name": "In2"}, headers=org.bearer)).json()
    exact = f"+1{area_codes.take()}5550142"
    body = {
        "phone_number": exact,
        "name": "Support",
        "language": "es-US",
        "voice": {"voice_id": "CALM_REASSURING", "speed": 1.0, "stability": 0.4},
        "inbound_agents": [
            {"agent_id": agent["id"], "weight": 0.7, "version": 1},
            {"agent_id": agent2["id"], "weight": 0.3},
        ],
        "outbound_agents": [{"agent_id": agent2["id"]}],
        "inbound_webhook_url": "https://hooks.example.com/inbound",
        "inbound_webhook_timeout_ms": 4000,
        "fallback": {"sip_uri": "sip:frontdesk@pbx.example.com"},
        "call_handler": {"type": "agents"},
        "message_handler": {"type": "laml_webhooks", "request_url": "https://hooks.example.com/sms"},
        "sip_outbound": {
            "endpoint": "trunk.pstn.twilio.com",
            "port": 5060,
            "transport": "TLS",
            "username": "u",
            "password": "s3cret-pass",
            "secure_media": True,
            "headers": [{"key": "X-Tenant", "value": "a"}],
            "codecs": ["PCMU", "OPUS"],
        },
        "outbound": True,
        "verified_caller_id": "+1 (415) 555-0111",
        "callback_forwarding_number": "(415) 555-0112",
        "allowed_inbound_countries": ["us", "CA"],
        "emergency_address_id": "ea_123",
        "metadata": {"team": "support"},
    }
    response = await client.post("/v1/phone-numbers", json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    n = response.json()
    assert n["phone_number"] == exact
    assert [(b["agent_id"], b["version"], b["weight"]) for b in n["inbound_agents"]] == [
        (agent["id"], 1, 0.7),
        (agent2["id"], None, 0.3),
    ]
    assert n["outbound_agents"] == [{"agent_id": agent2["id"], "version": None, "weight": 1.0}]
    assert n["sip_outbound"]["transport"] == "tls" and n["sip_outbound"]["password_set"] is True
    assert "password" not in n["sip_outbound"] and "s3cret-pass" not in response.text
    assert n["verified_caller_id"] == "+14155550111" and n["callback_forwarding_number"] == "+14155550112"
    assert n["allowed_inbound_countries"] == ["US", "CA"]
    assert n["emergency_status"] == "active" and n["metadata"] == {"team": "support"}
    assert n["fallback"] == {"sip_uri": "sip:frontdesk@pbx.example.com"}
    assert n["message_handler"]["request_url"] == "https://hooks.example.com/sms"


async def test_invalid_buy_lists_every_bad_field_and_writes_nothing(
    client: httpx.AsyncClient, db: Database, org: OrgCreds
) -> None:
    response = await client.post(
        "/v1/phone-numbers",
        headers=org.bearer,
        json={
            "phone_number": "555-CALL-NOW",
            "inbound_agents": [{"agent_id": "a", "weight": 0.5}],
            "callback_forwarding_number": "12",
            "type": "satellite",
        },
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"phone_number", "inbound_agents", "callback_forwarding_number", "type"} <= fields
    missing_agent = await client.post(
        "/v1/phone-numbers",
        headers=org.bearer,
        json={"area_code": "212", "inbound_agents": [{"agent_id": "nope"}]},
    )
    assert missing_agent.status_code == 422
    assert missing_agent.json()["errors"][0]["field"] == "inbound_agents[0].agent_id"
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(PhoneNumber).where(PhoneNumber.org_id == org.org_id)
        )
    assert count == 0


async def test_number_outside_the_sandbox_ranges_is_a_clear_409(
    client: httpx.AsyncClient, org: OrgCreds
) -> None:
    response = await client.post(
        "/v1/phone-numbers", json={"phone_number": "+14155550200"}, headers=org.bearer
    )
    assert response.status_code == 409
    assert response.json()["code"] == "number_unavailable"
    assert "sandbox" in response.json()["detail"]


async def test_ten_concurrent_retries_with_one_key_buy_one_number(
    live_server: LiveServer, db: Database, org: OrgCreds, area_codes
) -> None:
    area = area_codes.take()
    headers = {**org.bearer, "Idempotency-Key": f"order-{area}"}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/phone-numbers", json={"area_code": area}, headers=headers) for _ in range(10))
        )
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    async with db.session() as session:
        held = await session.scalar(
            select(func.count())
            .select_from(SandboxNumber)
            .where(SandboxNumber.phone_number.like(f"+1{area}%"))
        )
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.org_id == org.org_id)
        )
    assert held == 1 and orders == 1


async def test_idempotency_key_with_a_different_body_is_refused(
    client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    headers = {**org.bearer, "Idempotency-Key": "same-key"}
    first = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=headers)
    assert first.status_code == 201
    second = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=headers)
    assert second.status_code == 422
    assert second.json()["code"] == "idempotency_key_reused"


async def test_two_orgs_racing_for_one_number_one_wins_one_gets_409(
    live_server: LiveServer, db: Database, org: OrgCreds, other_org: OrgCreds, area_codes
) -> None:
    exact = f"+1{area_codes.take()}5550123"
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        a, b = await asyncio.gather(
            http.post("/v1/phone-numbers", json={"phone_number": exact}, headers=org.bearer),
            http.post("/v1/phone-numbers", json={"phone_number": exact}, headers=other_org.bearer),
        )
    assert sorted([a.status_code, b.status_code]) == [201, 409], (a.text, b.text)
    loser = a if a.status_code == 409 else b
    assert loser.json()["code"] == "number_unavailable"
    assert exact in loser.json()["detail"]
    async with db.session() as session:
        holders = await session.scalar(
            select(func.count())
            .select_from(PhoneNumber)
            .where(PhoneNumber.phone_number == exact, PhoneNumber.status.in_(("pending", "active")))
        )
    assert holders == 1


async def test_an_active_number_exists_once_in_the_system(
    client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, area_codes
) -> None:
    bought = (
        await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    ).json()
    imported = await client.post(
        "/v1/phone-numbers/import",
        headers=other_org.bearer,
        json={"numbers": [{"phone_number": bought["phone_number"]}]},
    )
    result = imported.json()["results"][0]
    assert result["status"] == "failed" and result["error"]["code"] == "already_exists"
    assert org.org_id not in result["error"]["message"]  # no leak of who holds it


async def test_a_purchase_is_audited_as_the_buying_key(
    client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    bought = (
        await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    ).json()
    audit = await client.get(
        "/v1/audit-events",
        params={"action": "phone_number.purchased", "target_id": bought["id"]},
        headers=org.bearer,
    )
    entries = audit.json()["data"]
    assert len(entries) == 1
    assert entries[0]["actor_id"] == org.key_id and entries[0]["via"] == "v1"
    assert entries[0]["after"]["phone_number"] == bought["phone_number"]


async def test_routing_only_accounts_import_but_never_buy(
    client: httpx.AsyncClient, org: OrgCreds, fake_vonage: FakeVonage
) -> None:
    created = await client.post(
        "/v1/carrier-accounts",
        headers=org.bearer,
        json={
            "carrier": "vonage",
            "name": "Vonage",
            "credentials": {
                "api_key": fake_vonage.api_key,
                "api_secret": fake_vonage.api_secret,
                "signature_secret": "sig",
            },
        },
    )
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    for attempt in (
        client.get(
            "/v1/available-phone-numbers", params={"carrier_account_id": account_id}, headers=org.bearer
        ),
        client.post(
            "/v1/phone-numbers",
            json={"area_code": "212", "carrier_account_id": account_id},
            headers=org.bearer,
        ),
    ):
        response = await attempt
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0] == {
            "field": "carrier_account_id",
            "code": "routing_only_account",
            "message": response.json()["errors"][0]["message"],
        }
        assert "import" in response.json()["detail"]
    imported = await client.post(
        "/v1/phone-numbers/import",
        headers=org.bearer,
        json={"numbers": [{"phone_number": "+442079460456", "carrier_account_id": account_id}]},
    )
    result = imported.json()["results"][0]
    assert result["status"] == "created", result
    number = (await client.get(f"/v1/phone-numbers/{result['id']}", headers=org.bearer)).json()
    assert number["carrier"] == "vonage" and number["carrier_account_id"] == account_id
