"""Get, list, update and release."""

from __future__ import annotations

import urllib.parse

import httpx

from tests.support import OrgCreds


async def _buy(client: httpx.AsyncClient, org: OrgCreds, area: str, **extra: object) -> dict:
    response = await client.post("/v1/phone-numbers", json={"area_code": area, **extra}, headers=org.bearer)
    assert response.status_code == 201, response.text
    return response.json()


async def test_get_by_id_or_any_form_of_the_number(
    client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    n = await _buy(client, org, area_codes.take())
    e = n["phone_number"]
    national = f"({e[2:5]}) {e[5:8]}-{e[8:]}"
    for ref in (n["id"], e, urllib.parse.quote(e, safe=""), e[1:], urllib.parse.quote(national, safe="")):
        got = await client.get(f"/v1/phone-numbers/{ref}", headers=org.bearer)
        assert got.status_code == 200, ref
        assert got.json()["id"] == n["id"]
    assert (await client.get("/v1/phone-numbers/not-a-number", headers=org.bearer)).status_code == 404


async def test_patch_is_partial_and_null_clears(client: httpx.AsyncClient, org: OrgCreds, area_codes) -> None:
    agent = (await client.post("/v1/agents", json={"name": "A"}, headers=org.bearer)).json()
    n = await _buy(
        client,
        org,
        area_codes.take(),
        name="Before",
        language="en-US",
        inbound_webhook_url="https://hooks.example.com/in",
        sip_outbound={"endpoint": "t.example.com", "password": "pw1"},
    )
    patched = await client.patch(
        f"/v1/phone-numbers/{n['id']}",
        headers=org.bearer,
        json={
            "name": "After",
            "inbound_webhook_url": None,
            "inbound_agents": [{"agent_id": agent["id"]}],
            "call_handler": {"type": "laml_webhooks", "request_url": "https://cust.example.com/laml"},
        },
    )
    assert patched.status_code == 200, patched.text
    p = patched.json()
    assert p["name"] == "After" and p["language"] == "en-US"
    assert p["inbound_webhook_url"] is None
    assert p["inbound_agents"][0]["agent_id"] == agent["id"]
    assert p["call_handler"]["request_url"] == "https://cust.example.com/laml"
    assert p["last_modification_timestamp"] >= n["last_modification_timestamp"]
    # A SIP config written back without its password keeps the stored one; null clears it.
    kept = await client.patch(
        f"/v1/phone-numbers/{n['id']}",
        headers=org.bearer,
        json={"sip_outbound": {"endpoint": "t2.example.com"}},
    )
    assert kept.json()["sip_outbound"] == {
        **kept.json()["sip_outbound"],
        "endpoint": "t2.example.com",
        "password_set": True,
    }
    cleared = await client.patch(
        f"/v1/phone-numbers/{n['id']}",
        headers=org.bearer,
        json={"sip_outbound": {"endpoint": "t2.example.com", "password": None}},
    )
    assert cleared.json()["sip_outbound"]["password_set"] is False
    bad = await client.patch(
        f"/v1/phone-numbers/{n['id']}",
        headers=org.bearer,
        json={"fallback": {"number": "x"}, "allowed_outbound_countries": ["ZZ"]},
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"fallback.number", "allowed_outbound_countries[0]"}
    unchanged = (await client.get(f"/v1/phone-numbers/{n['id']}", headers=org.bearer)).json()
    assert unchanged["fallback"] is None


async def test_release_keeps_a_record_and_twice_is_harmless(
    client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    n = await _buy(client, org, area_codes.take())
    first = await client.delete(f"/v1/phone-numbers/{n['phone_number']}", headers=org.bearer)
    assert first.status_code == 200 and first.json()["status"] == "released"
    assert first.json()["released_at"] is not None and first.json()["next_billed_at"] is None
    second = await client.delete(f"/v1/phone-numbers/{n['id']}", headers=org.bearer)
    assert second.status_code == 200 and second.json()["status"] == "released"
    # Gone from the default list, kept as a tombstone.
    live = (await client.get("/v1/phone-numbers", headers=org.bearer)).json()["data"]
    assert n["id"] not in [x["id"] for x in live]
    released = (
        await client.get("/v1/phone-numbers", params={"status": "released"}, headers=org.bearer)
    ).json()
    assert n["id"] in [x["id"] for x in released["data"]]
    # A released number can no longer be changed, and can be bought again.
    refused = await client.patch(f"/v1/phone-numbers/{n['id']}", json={"name": "x"}, headers=org.bearer)
    assert refused.status_code == 409
    again = await client.post(
        "/v1/phone-numbers", json={"phone_number": n["phone_number"]}, headers=org.bearer
    )
    assert again.status_code == 201 and again.json()["id"] != n["id"]


async def test_list_filters_and_cursor(client: httpx.AsyncClient, org: OrgCreds, area_codes) -> None:
    agent = (await client.post("/v1/agents", json={"name": "F"}, headers=org.bearer)).json()
    area = area_codes.take()
    a = await _buy(client, org, area, name="Sales East", inbound_agents=[{"agent_id": agent["id"]}])
    b = await _buy(client, org, area, name="Support")
    c = await _buy(client, org, area_codes.take(), name="Sales West")

    async def ids(**params: object) -> list[str]:
        body = (await client.get("/v1/phone-numbers", params=params, headers=org.bearer)).json()
        return [x["id"] for x in body["data"]]

    assert await ids() == [c["id"], b["id"], a["id"]]
    assert await ids(q="sales") == [c["id"], a["id"]]
    assert await ids(q=b["phone_number"][-4:]) == [b["id"]]
    assert await ids(agent_id=agent["id"]) == [a["id"]]
    assert await ids(area_code=area) == [b["id"], a["id"]]
    assert await ids(carrier="sandbox", status="active") == [c["id"], b["id"], a["id"]]
    assert await ids(carrier="twilio") == []
    page1 = (await client.get("/v1/phone-numbers", params={"limit": 2}, headers=org.bearer)).json()
    assert page1["has_more"] is True
    page2 = (
        await client.get(
            "/v1/phone-numbers", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=org.bearer
        )
    ).json()
    assert [x["id"] for x in page2["data"]] == [a["id"]] and page2["has_more"] is False
    bad = await client.get("/v1/phone-numbers", params={"cursor": "garbage"}, headers=org.bearer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
