"""The inbound webhook (Retell call_inbound semantics) against a real HTTP server on loopback."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import httpx

from numberplane.kernel.net import CustomerClient
from numberplane.numbers.models import PhoneNumber
from numberplane.routing import webhook
from numberplane.routing.decide import CallInfo
from numberplane.routing.snapshot import RouteSnapshot
from tests.routing.hooks import Behaviour, HookServer, answer
from tests.routing.world import World

CALLER = "+12125550123"


async def call(
    client: httpx.AsyncClient, world: World, number: PhoneNumber, call_sid: str = "CA1"
) -> ET.Element:
    request = world.twilio_request(
        world.accounts["twilio"], {"CallSid": call_sid, "From": CALLER, "To": number.phone_number}
    )
    response = await world.post(client, request)
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def streamed(root: ET.Element) -> dict[str, str | None]:
    assert root[0].tag == "Connect", ET.tostring(root)
    stream = root[0][0]
    return {"url": stream.get("url"), **{p.get("name") or "": p.get("value") for p in stream}}


async def test_override_agent_dynamic_variables_and_metadata(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own", versions=2)
    other = await world.agent(stream_url="wss://agents.example.com/vip")
    url = hooks.hook(
        answer(override_agent_id=other, dynamic_variables={"name": "Ada", "n": 3}, metadata={"crm": "42"})
    )
    number = await world.number(world.accounts["twilio"], agents=[(own, None, 1.0)], inbound_webhook_url=url)
    params = streamed(await call(client, world, number, "CAhook"))
    assert params["url"] == "wss://agents.example.com/vip" and params["agent_id"] == other
    assert json.loads(params["dynamic_variables"] or "") == {"name": "Ada", "n": "3"}
    assert json.loads(params["metadata"] or "") == {"crm": "42"}
    [sent] = hooks.requests(url)
    assert sent["json"]["event"] == "call_inbound"
    inbound = sent["json"]["call_inbound"]
    assert inbound == {
        "agent_id": own,
        "agent_version": 2,
        "from_number": CALLER,
        "to_number": number.phone_number,
        "call_id": "CAhook",
        "phone_number_id": number.id,
    }
    assert sent["headers"]["content-type"] == "application/json"


async def test_override_version(client: httpx.AsyncClient, world: World, hooks: HookServer) -> None:
    agent = await world.agent(
        stream_url="wss://agents.example.com/v3",
        versions=3,
        version_connects={1: {"stream_url": "wss://agents.example.com/v1"}},
    )
    url = hooks.hook(answer(override_agent_version=1))
    number = await world.number(
        world.accounts["twilio"], agents=[(agent, None, 1.0)], inbound_webhook_url=url
    )
    params = streamed(await call(client, world, number))
    assert params["url"] == "wss://agents.example.com/v1" and params["agent_version"] == "1"


async def test_override_to_another_orgs_agent_is_ignored(
    client: httpx.AsyncClient, world: World, other_world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/mine")
    foreign = await other_world.agent(stream_url="wss://agents.example.com/theirs")
    url = hooks.hook(answer(override_agent_id=foreign))
    number = await world.number(world.accounts["twilio"], agents=[(own, None, 1.0)], inbound_webhook_url=url)
    assert streamed(await call(client, world, number))["url"] == "wss://agents.example.com/mine"


async def test_webhook_rejects(client: httpx.AsyncClient, world: World, hooks: HookServer) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/x")
    url = hooks.hook(answer(reject=True))
    number = await world.number(world.accounts["twilio"], agents=[(own, None, 1.0)], inbound_webhook_url=url)
    root = await call(client, world, number)
    assert [c.tag for c in root] == ["Reject"]


async def test_webhook_chooses_the_agent_for_a_number_without_one(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    chosen = await world.agent(sip_uri="sip:chosen@sip.example.com")
    url = hooks.hook(answer(override_agent_id=chosen))
    number = await world.number(world.accounts["twilio"], inbound_webhook_url=url)
    root = await call(client, world, number)
    assert root[0].tag == "Dial" and (root[0][0].text or "").startswith("sip:chosen@sip.example.com?")
    # ... and without an answer naming one, the call has no agent: not in service.
    url2 = hooks.hook(answer())
    bare = await world.number(world.accounts["twilio"], inbound_webhook_url=url2)
    assert [c.tag for c in await call(client, world, bare)] == ["Say", "Hangup"]


async def test_a_failure_then_an_answer_is_retried(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own")
    vip = await world.agent(stream_url="wss://agents.example.com/vip")
    url = hooks.hook(Behaviour("status", status=503), answer(override_agent_id=vip))
    number = await world.number(world.accounts["twilio"], agents=[(own, None, 1.0)], inbound_webhook_url=url)
    assert streamed(await call(client, world, number))["agent_id"] == vip
    attempts = [r["headers"]["x-numberplane-attempt"] for r in hooks.requests(url)]
    assert attempts == ["1", "2"]


async def test_failures_carry_on_with_the_numbers_agents(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own")
    for plan in (Behaviour("status", status=500), Behaviour("raw", body=b"<html>oops</html>")):
        url = hooks.hook(plan)
        number = await world.number(
            world.accounts["twilio"],
            agents=[(own, None, 1.0)],
            inbound_webhook_url=url,
            inbound_webhook_attempts=3,
        )
        assert streamed(await call(client, world, number))["agent_id"] == own
        assert len(hooks.requests(url)) == (3 if plan.kind == "status" else 1)


async def test_a_hanging_webhook_uses_the_budget_then_carries_on(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own")
    url = hooks.hook(Behaviour("hang"))
    number = await world.number(
        world.accounts["twilio"],
        agents=[(own, None, 1.0)],
        inbound_webhook_url=url,
        inbound_webhook_timeout_ms=400,
        inbound_webhook_attempts=2,
    )
    assert streamed(await call(client, world, number))["agent_id"] == own
    assert len(hooks.requests(url)) == 2
    metrics = (await client.get("/metrics")).text
    assert 'numberplane_route_webhook_failures_total{reason="timeout"}' in metrics


async def test_a_late_answer_is_dropped_and_the_retry_counts(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own")
    vip = await world.agent(stream_url="wss://agents.example.com/vip")
    # Wide margins: the second attempt has ~1.1 s, so a loaded CI machine still gets its answer.
    late = Behaviour("late", body={"call_inbound": {"override_agent_id": own}}, delay=2.0)
    url = hooks.hook(late, answer(override_agent_id=vip))
    number = await world.number(
        world.accounts["twilio"],
        agents=[(own, None, 1.0)],
        inbound_webhook_url=url,
        inbound_webhook_timeout_ms=2400,
        inbound_webhook_attempts=2,
    )
    assert streamed(await call(client, world, number))["agent_id"] == vip


async def test_an_empty_answer_changes_nothing(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    own = await world.agent(stream_url="wss://agents.example.com/own")
    url = hooks.hook(Behaviour("raw", body=b"", status=204))
    number = await world.number(world.accounts["twilio"], agents=[(own, None, 1.0)], inbound_webhook_url=url)
    params = streamed(await call(client, world, number))
    assert params["agent_id"] == own and "dynamic_variables" not in params


async def test_webhook_not_asked_when_an_earlier_step_decides(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    url = hooks.hook(answer())
    number = await world.number(
        world.accounts["twilio"], inbound_webhook_url=url, allowed_inbound_countries=["GB"]
    )
    assert [c.tag for c in await call(client, world, number)] == ["Reject"]
    assert hooks.requests(url) == []


async def test_loopback_webhooks_are_blocked_unless_allowed(hooks: HookServer) -> None:
    url = hooks.hook(answer(reject=True))
    route = RouteSnapshot(
        number_id="n", org_id="o", e164="+14155550100", status="active", carrier="twilio",
        carrier_account_id="a", inbound_webhook_url=url,
    )  # fmt: skip
    info = CallInfo.parse(to="+14155550100", caller=CALLER, call_id="c", carrier="twilio")

    async def no_agent(*_: object) -> None:
        return None

    async with CustomerClient(allow_private=False) as http:
        blocked = await webhook.ask(http, route, info, allow_private=False, load_agent=no_agent)
        assert blocked.status == "failed" and blocked.error == "blocked_url"
        assert hooks.requests(url) == []
    async with CustomerClient(allow_private=True) as http:
        allowed = await webhook.ask(http, route, info, allow_private=True, load_agent=no_agent)
        assert allowed.status == "rejected"


async def test_same_call_id_same_agent_across_retries(
    client: httpx.AsyncClient, world: World, hooks: HookServer
) -> None:
    """Carriers retry; a retried request for the same call must land on the same agent."""
    a = await world.agent(stream_url="wss://agents.example.com/a")
    b = await world.agent(stream_url="wss://agents.example.com/b")
    number = await world.number(world.accounts["twilio"], agents=[(a, None, 0.5), (b, None, 0.5)])
    picks = {}
    for sid in ("CA-1", "CA-2", "CA-3", "CA-4", "CA-5", "CA-6"):
        first = streamed(await call(client, world, number, sid))["agent_id"]
        again = streamed(await call(client, world, number, sid))["agent_id"]
        assert first == again
        picks[sid] = first
    assert set(picks.values()) <= {a, b}
