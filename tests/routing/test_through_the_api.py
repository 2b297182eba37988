"""End to end through the control plane: agents and sandbox numbers made with the real API, then
called the way the sandbox carrier calls (Twilio-signed with the sandbox account's token). Every
write goes through the core services, so this also shows their invalidation reaches the cache."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from tests.routing.world import World
from tests.support import AreaCodes, OrgCreds


async def test_buy_call_update_release(
    client: httpx.AsyncClient, world: World, org: OrgCreds, area_codes: AreaCodes
) -> None:
    agent = await client.post(
        "/v1/agents",
        json={"name": "Front desk", "connect": {"stream_url": "wss://agents.example.com/v1"}},
        headers=org.bearer,
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    bought = await client.post(
        "/v1/phone-numbers",
        json={"area_code": area_codes.take(), "inbound_agents": [{"agent_id": agent_id}]},
        headers=org.bearer,
    )
    assert bought.status_code == 201, bought.text
    number = bought.json()
    e164 = number["phone_number"]

    async def call(sid: str) -> ET.Element:
        request = world.twilio_request(world.sandbox, {"CallSid": sid, "From": "+12125550123", "To": e164})
        response = await world.post(client, request)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.content)

    def stream(root: ET.Element) -> tuple[str | None, dict[str, str | None]]:
        assert root[0].tag == "Connect", ET.tostring(root)
        element = root[0][0]
        return element.get("url"), {p.get("name") or "": p.get("value") for p in element}

    url, params = stream(await call("CA-api-1"))
    assert url == "wss://agents.example.com/v1"
    assert params["agent_id"] == agent_id and params["agent_version"] == "1"
    assert params["phone_number_id"] == number["id"]

    # A new agent version: the number follows the latest, at once.
    updated = await client.patch(
        f"/v1/agents/{agent_id}",
        json={"connect": {"sip_uri": "sip:desk@pbx.example.com"}},
        headers=org.bearer,
    )
    assert updated.status_code == 200, updated.text
    root = await call("CA-api-2")
    assert root[0].tag == "Dial" and (root[0][0].text or "").startswith("sip:desk@pbx.example.com?")

    # A number update: only UK callers now.
    patched = await client.patch(
        f"/v1/phone-numbers/{number['id']}", json={"allowed_inbound_countries": ["GB"]}, headers=org.bearer
    )
    assert patched.status_code == 200, patched.text
    assert [c.tag for c in await call("CA-api-3")] == ["Reject"]

    # Released: not in service.
    released = await client.delete(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)
    assert released.status_code in (200, 202, 204), released.text
    assert [c.tag for c in await call("CA-api-4")] == ["Say", "Hangup"]
