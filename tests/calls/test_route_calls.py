"""/v1/route with a call id leaves a record; /v1/route/status moves it; explain records nothing."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from numberplane.calls.schemas import OUTCOMES
from numberplane.routing.decide import OUTCOMES as ROUTING_OUTCOMES
from tests.calls.test_carrier_calls import only_call
from tests.routing.hooks import HookServer, answer
from tests.routing.world import World
from tests.support import OrgCreds

Flush = Callable[[], Coroutine[Any, Any, int]]


def test_outcomes_are_routings() -> None:
    assert OUTCOMES == ROUTING_OUTCOMES


async def test_route_with_call_id_then_status_reports(
    client: httpx.AsyncClient, world: World, org: OrgCreds, flush: Flush
) -> None:
    agent = await world.agent(sip_uri="sip:bot@livekit.example.com")
    number = await world.number(None, agents=[(agent, None, 1.0)])
    params = {"to": number.phone_number, "from": "2125550123", "call_id": "sip-call-1"}
    assert (await client.get("/v1/route", params=params, headers=org.bearer)).status_code == 200
    await flush()
    record = await only_call(client, org, carrier="api", phone_number_id=number.id)
    assert record["status"] == "ringing" and record["carrier_call_id"] == "sip-call-1"
    assert record["outcome"] == "agent_sip" and record["from"] == "+12125550123"

    async def report(**body: Any) -> httpx.Response:
        return await client.post("/v1/route/status", json=body, headers=org.bearer)

    accepted = await report(call_id="sip-call-1", status="in_progress")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"object": "call_status", "call_id": "sip-call-1", "status": "in_progress"}
    assert (
        await report(call_id="sip-call-1", status="completed", duration_s=65, sip_code=200)
    ).status_code == 202
    assert (await report(call_id="sip-call-1", status="ringing")).status_code == 202  # late: ignored
    await flush()
    done = await only_call(client, org, carrier="api", phone_number_id=number.id)
    assert done["id"] == record["id"]
    assert done["status"] == "completed" and done["duration_s"] == 65 and done["sip_code"] == 200
    assert done["answered_at"] is not None


async def test_route_status_for_an_unknown_call_creates_it_and_bad_input_names_the_field(
    client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, flush: Flush
) -> None:
    response = await client.post(
        "/v1/route/status", json={"call_id": "never-routed", "status": "failed"}, headers=org.bearer
    )
    assert response.status_code == 202
    await flush()
    record = await only_call(client, org, carrier="api", status="failed")
    assert record["carrier_call_id"] == "never-routed" and record["outcome"] is None
    # The same call id under another org's key is another org's call.
    other = await client.get("/v1/calls", params={"carrier": "api"}, headers=other_org.bearer)
    assert other.json()["data"] == []
    bad = await client.post("/v1/route/status", json={"call_id": "x", "status": "done"}, headers=org.bearer)
    assert bad.status_code == 422 and "status" in bad.text
    long_id = await client.post(
        "/v1/route/status", json={"call_id": "x" * 129, "status": "busy"}, headers=org.bearer
    )
    assert long_id.status_code == 422 and "call_id" in long_id.text
    unauthenticated = await client.post("/v1/route/status", json={"call_id": "x", "status": "busy"})
    assert unauthenticated.status_code == 401


async def test_route_without_call_id_records_nothing(
    client: httpx.AsyncClient, world: World, org: OrgCreds, flush: Flush
) -> None:
    number = await world.number(None, fallback={"sip_uri": "sip:desk@pbx.example.com"})
    assert (
        await client.get("/v1/route", params={"to": number.phone_number}, headers=org.bearer)
    ).status_code == 200
    await flush()
    listed = await client.get("/v1/calls", params={"phone_number_id": number.id}, headers=org.bearer)
    assert listed.json()["data"] == []


async def test_explain_returns_the_trace_and_records_nothing(
    client: httpx.AsyncClient, world: World, org: OrgCreds, hooks: HookServer, flush: Flush
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own")
    chosen = await world.agent(stream_url="wss://agents.example.com/chosen")
    url = hooks.hook(answer(override_agent_id=chosen))
    number = await world.number(
        None,
        agents=[(own, None, 1.0)],
        inbound_webhook_url=url,
        allowed_inbound_countries=["US"],
    )
    params = {"to": number.phone_number, "from": "+12125550123", "call_id": "explain-1", "explain": "true"}
    response = await client.get("/v1/route", params=params, headers=org.bearer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"]["outcome"] == "agent_stream" and body["decision"]["agent_id"] == chosen
    assert body["webhook"]["asked"] is True and body["webhook"]["status"] == "answered"
    assert body["webhook"]["overrode_agent"] is True and body["webhook"]["latency_ms"] > 0
    steps = body["trace"]
    assert [s["step"] for s in steps] == ["number", "country", "webhook", "agent"]
    assert steps[1] == {"step": "country", "result": "allowed", "detail": "caller's country US is in US"}
    assert steps[2]["result"] == "answered" and f"chose agent {chosen}" in steps[2]["detail"]
    assert steps[3]["result"] == "picked" and "chosen by the inbound webhook" in steps[3]["detail"]
    await flush()
    listed = await client.get("/v1/calls", params={"phone_number_id": number.id}, headers=org.bearer)
    assert listed.json()["data"] == []

    # A caller from elsewhere: the trace stops at the country check.
    params = {"to": number.phone_number, "from": "+442079460123", "explain": "true"}
    body = (await client.get("/v1/route", params=params, headers=org.bearer)).json()
    assert body["decision"]["outcome"] == "rejected"
    assert body["trace"][-1] == {
        "step": "country",
        "result": "rejected",
        "detail": "caller's country GB is not in US",
    }
