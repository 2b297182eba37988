"""The reported control characters end to end (issue 10, item 5): a signed carrier request whose
``From`` and ``CallSid`` hold ``\\x01``, for a number whose agent's stored ``stream_url`` holds
``\\u0001``, gets TwiML/LaML/TeXML that an XML parser reads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from tests.routing.world import World
from tests.support import OrgCreds


async def test_control_characters_from_the_carrier_and_the_agent(
    client: httpx.AsyncClient, world: World
) -> None:
    # Stored directly: the API refuses such a URL now, but rows written before may hold one.
    agent = await world.agent(stream_url="wss://agents.example.com/\u0001bot")
    account = world.accounts["twilio"]
    number = await world.number(account, agents=[(agent, None, 1.0)])
    params = {
        "AccountSid": account.config["account_sid"],
        "CallSid": "CA\x01",
        "From": "sip:caller\x01@example.com",
        "To": number.phone_number,
    }
    signature = RequestValidator(account.secrets["auth_token"]).compute_signature(
        world.url("/voice/twilio"), params
    )
    response = await client.post(
        "/voice/twilio",
        content=urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    stream = ET.fromstring(response.content).find("./Connect/Stream")  # before: not well-formed
    assert stream is not None and stream.get("url") == "wss://agents.example.com/\ufffdbot"
    values = {p.get("name"): p.get("value") for p in stream}
    assert values["call_id"] == "CA\ufffd" and values["from"] == "sip:caller\ufffd@example.com"


async def test_the_api_refuses_control_characters_in_urls(client: httpx.AsyncClient, org: OrgCreds) -> None:
    for connect, field in (
        ({"stream_url": "wss://agents.example.com/\u0001bot"}, "connect.stream_url"),
        ({"sip_uri": "sip:bot\u0001@sip.example.com"}, "connect.sip_uri"),
    ):
        response = await client.post("/v1/agents", json={"name": "a", "connect": connect}, headers=org.bearer)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["field"] == field and "control characters" in error["message"]
