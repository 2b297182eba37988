"""/v1/agents: CRUD, versions, validation, and the refusal to delete an agent in use."""

from __future__ import annotations

import httpx

from tests.support import OrgCreds

FULL = {
    "name": "Receptionist",
    "language": "en-US",
    "voice": {
        "voice_id": "FRIENDLY_BRIGHT",
        "provider": "elevenlabs",
        "speed": 1.1,
        "stability": 0.5,
        "similarity": 0.75,
        "style": 0.2,
        "pitch": 0,
        "rate": 15,
    },
    "prompt": "You answer the phone for a dental clinic.",
    "initial_message": "Hello, how can I help?",
    "actions": [
        {"type": "end_conversation"},
        {"type": "transfer_call", "config": {"phone_number": "(415) 555-0123"}},
        {"type": "send_dtmf", "config": {"digits": "1234#"}},
    ],
    "webhook": {
        "url": "https://hooks.example.com/agent",
        "method": "POST",
        "subscriptions": ["event_phone_call_connected", "event_transcript"],
    },
    "connect": {"stream_url": "wss://agents.example.com/stream"},
}


async def test_create_get_list_update_delete(client: httpx.AsyncClient, org: OrgCreds) -> None:
    created = await client.post("/v1/agents", json=FULL, headers=org.bearer)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["version"] == 1 and agent["org_id"] == org.org_id
    assert agent["voice"]["stability"] == 0.5
    assert agent["actions"][1]["config"]["phone_number"] == "+14155550123"
    assert agent["connect"] == {"stream_url": "wss://agents.example.com/stream"}

    got = await client.get(f"/v1/agents/{agent['id']}", headers=org.bearer)
    assert got.json() == agent

    updated = await client.patch(
        f"/v1/agents/{agent['id']}",
        headers=org.bearer,
        json={"prompt": "New prompt", "connect": {"sip_uri": "sip:bot@sip.example.com"}},
    )
    assert updated.status_code == 200
    body = updated.json()
    assert body["version"] == 2 and body["prompt"] == "New prompt"
    assert body["connect"] == {"sip_uri": "sip:bot@sip.example.com"}
    assert body["voice"] == agent["voice"]  # untouched

    v1 = await client.get(f"/v1/agents/{agent['id']}/versions/1", headers=org.bearer)
    assert v1.json()["config"]["prompt"] == FULL["prompt"]
    v2 = await client.get(f"/v1/agents/{agent['id']}/versions/2", headers=org.bearer)
    assert v2.json()["config"]["prompt"] == "New prompt"
    assert (await client.get(f"/v1/agents/{agent['id']}/versions/3", headers=org.bearer)).status_code == 404

    cleared = await client.patch(f"/v1/agents/{agent['id']}", json={"webhook": None}, headers=org.bearer)
    assert cleared.json()["webhook"] is None and cleared.json()["version"] == 3

    listed = await client.get("/v1/agents", headers=org.bearer)
    assert [a["id"] for a in listed.json()["data"]] == [agent["id"]]

    assert (await client.delete(f"/v1/agents/{agent['id']}", headers=org.bearer)).status_code == 204
    assert (await client.get(f"/v1/agents/{agent['id']}", headers=org.bearer)).status_code == 404


async def test_list_paginates_with_a_cursor(client: httpx.AsyncClient, org: OrgCreds) -> None:
    ids = [
        (await client.post("/v1/agents", json={"name": f"A{i}"}, headers=org.bearer)).json()["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/agents", params=params, headers=org.bearer)).json()
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == list(reversed(ids))


async def test_every_bad_field_is_listed(client: httpx.AsyncClient, org: OrgCreds) -> None:
    response = await client.post(
        "/v1/agents",
        headers=org.bearer,
        json={
            "name": "",
            "language": "english",
            "voice": {"stability": 3},
            "actions": [{"type": "transfer_call"}],
            "connect": {"stream_url": "https://not-websocket.example.com"},
            "webhook": {"url": "ftp://x"},
            "surprise": 1,
        },
    )
    assert response.status_code == 422
    body = response.json()
    fields = {e["field"] for e in body["errors"]}
    assert {
        "name",
        "language",
        "voice.stability",
        "actions[0]",
        "connect.stream_url",
        "webhook.url",
        "surprise",
    } <= fields, fields
    assert body["code"] == "validation_failed"


async def test_connect_needs_exactly_one_target(client: httpx.AsyncClient, org: OrgCreds) -> None:
    response = await client.post(
        "/v1/agents",
        headers=org.bearer,
        json={
            "name": "x",
            "connect": {"stream_url": "wss://a.example.com", "sip_uri": "sip:a@b.example.com"},
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "connect"


async def test_delete_refused_while_numbers_use_it(
    client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    agent = (await client.post("/v1/agents", json={"name": "Busy"}, headers=org.bearer)).json()
    number = (
        await client.post(
            "/v1/phone-numbers",
            headers=org.bearer,
            json={"area_code": area_codes.take(), "outbound_agents": [{"agent_id": agent["id"]}]},
        )
    ).json()
    refused = await client.delete(f"/v1/agents/{agent['id']}", headers=org.bearer)
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "agent_in_use"
    assert number["phone_number"] in body["detail"]
    assert body["phone_numbers"] == [{"id": number["id"], "phone_number": number["phone_number"]}]
    # Once the number lets go, the delete goes through.
    await client.patch(f"/v1/phone-numbers/{number['id']}", json={"outbound_agents": []}, headers=org.bearer)
    assert (await client.delete(f"/v1/agents/{agent['id']}", headers=org.bearer)).status_code == 204
