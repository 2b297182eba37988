"""GET /v1/route: the carrier-neutral decision for SIP platforms, and the dry run per carrier."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from numberplane.routing.fastpath import VoiceFastPath
from tests.routing.hooks import HookServer, answer
from tests.routing.world import World
from tests.support import OrgCreds

CALLER = "+12125550123"


@pytest.fixture(params=["view", "fastpath"])
async def client(request: pytest.FixtureRequest, app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """Every test here twice: through the FastAPI view, and through the fast path in front of
    it (``routing.api_route.lean``, which answers when it can and hands over otherwise)."""
    fast = VoiceFastPath(app.build_middleware_stack(), app)

    async def in_front(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app  # what Starlette.__call__ sets before its middleware stack
        await fast(scope, receive, send)

    transport = httpx.ASGITransport(app=app if request.param == "view" else in_front)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        yield c


async def test_needs_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/route", params={"to": "+14155550100"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_json_decision_for_a_sip_platform(
    client: httpx.AsyncClient, world: World, org: OrgCreds
) -> None:
    agent = await world.agent(sip_uri="sip:bot@livekit.example.com")
    number = await world.number(None, agents=[(agent, None, 1.0)])  # imported over a SIP trunk
    response = await client.get(
        "/v1/route",
        params={"to": f"sip:{number.phone_number}@pbx.example.com", "from": "2125550123", "call_id": "sip-1"},
        headers=org.bearer,
    )
    assert response.status_code == 200
    assert response.headers["x-numberplane-outcome"] == "agent_sip"
    decision = response.json()["decision"]
    assert decision["outcome"] == "agent_sip" and decision["action"] == "dial_sip"
    assert decision["sip_uri"] == "sip:bot@livekit.example.com"
    assert decision["agent_id"] == agent and decision["phone_number_id"] == number.id
    assert decision["from"] == CALLER and decision["call_id"] == "sip-1"
    assert decision["parameters"]["phone_number_id"] == number.id


async def test_other_orgs_numbers_are_unknown(
    client: httpx.AsyncClient, world: World, other_world: World, other_org: OrgCreds
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/private")
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    response = await client.get("/v1/route", params={"to": number.phone_number}, headers=other_org.bearer)
    decision = response.json()["decision"]
    assert decision["outcome"] == "not_in_service" and decision["reason"] == "unknown_number"
    assert decision["phone_number_id"] is None and "private" not in response.text


@pytest.mark.parametrize(
    ("fmt", "carrier", "path"),
    [
        ("twiml", "twilio", "/voice/twilio"),
        ("laml", "signalwire", "/voice/signalwire"),
        ("texml", "telnyx", "/voice/telnyx"),
    ],
)
async def test_dry_run_is_exactly_what_the_carrier_receives(
    client: httpx.AsyncClient, world: World, org: OrgCreds, fmt: str, carrier: str, path: str
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/dry", versions=2)
    number = await world.number(world.accounts[carrier], agents=[(agent, None, 1.0)])
    dry = await client.get(
        "/v1/route",
        params={"to": number.phone_number, "from": CALLER, "call_id": "CAdry", "format": fmt},
        headers=org.key_headers,
    )
    assert dry.status_code == 200 and dry.headers["content-type"].startswith("application/xml")
    call = {"CallSid": "CAdry", "From": CALLER, "To": number.phone_number}
    request = getattr(world, f"{carrier}_request")(world.accounts[carrier], call)
    real = await world.post(client, request)
    assert real.status_code == 200
    assert dry.content == real.content
    assert ET.fromstring(dry.content)[0].tag == "Connect"


async def test_dry_run_ncco(client: httpx.AsyncClient, world: World, org: OrgCreds) -> None:
    number = await world.number(world.accounts["vonage"], fallback={"sip_uri": "sip:desk@pbx.example.com"})
    response = await client.get(
        "/v1/route", params={"to": number.phone_number, "format": "ncco"}, headers=org.bearer
    )
    assert response.json() == [
        {
            "action": "connect",
            "endpoint": [{"type": "sip", "uri": "sip:desk@pbx.example.com", "headers": {}}],
            "from": number.phone_number[1:],
        }
    ]


async def test_dry_run_can_skip_the_webhook(
    client: httpx.AsyncClient, world: World, org: OrgCreds, hooks: HookServer
) -> None:
    url = hooks.hook(answer(reject=True))
    agent = await world.agent(stream_url="wss://agents.example.com/x")
    number = await world.number(
        world.accounts["twilio"], agents=[(agent, None, 1.0)], inbound_webhook_url=url
    )
    skipped = await client.get(
        "/v1/route", params={"to": number.phone_number, "webhook": "false"}, headers=org.bearer
    )
    assert skipped.json()["decision"]["outcome"] == "agent_stream"
    assert skipped.json()["decision"]["webhook"] == "failed"
    assert hooks.requests(url) == []
    asked = await client.get("/v1/route", params={"to": number.phone_number}, headers=org.bearer)
    assert asked.json()["decision"]["outcome"] == "rejected"


async def test_bad_parameters(client: httpx.AsyncClient, org: OrgCreds) -> None:
    assert (await client.get("/v1/route", headers=org.bearer)).status_code == 422
    bad = await client.get("/v1/route", params={"to": "+14155550100", "format": "yaml"}, headers=org.bearer)
    assert bad.status_code == 422
    junk = await client.get("/v1/route", params={"to": "hello"}, headers=org.bearer)
    assert junk.json()["decision"]["outcome"] == "not_in_service"


async def test_metrics(client: httpx.AsyncClient, world: World, org: OrgCreds) -> None:
    await client.get("/v1/route", params={"to": world.fresh_number()}, headers=org.bearer)
    body = (await client.get("/metrics")).text
    assert 'numberplane_route_decisions_total{carrier="api",outcome="not_in_service"}' in body
    assert "numberplane_route_decision_seconds_bucket" in body
    assert "numberplane_route_webhook_failures" in body
    assert "numberplane_route_cache_entries" in body
