"""Vocode through its own SDK (vocode-api) against the live server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from vocode import AgentParams, DtmfActionParams, EmptyActionConfig, Vocode
from vocode.core.api_error import ApiError
from vocode.errors.unprocessable_entity_error import UnprocessableEntityError

from numberplane.carriers.models import CarrierAccount, SandboxNumber
from numberplane.kernel.db import Database
from tests.dialects.helpers import make_agent, v1_count, v1_get
from tests.support import LiveServer, OrgCreds

INLINE_AGENT: dict[str, Any] = {
    "name": "Receptionist",
    "prompt": {"content": "You answer the phone for Acme."},
    "language": "en",
    "actions": [
        {"type": "action_transfer_call", "config": {"phone_number": "+14155550142"}},
        {"type": "action_end_conversation"},
    ],
    "voice": {"type": "voice_azure", "voice_name": "en-US-JennyNeural", "pitch": 0, "rate": 15},
    "initial_message": "Hello, Acme!",
    "webhook": {
        "subscriptions": ["event_message", "event_phone_call_ended"],
        "url": "https://hooks.example.com/v",
    },
    "interrupt_sensitivity": "high",
}
NUMBER_KEYS = {
    "id",
    "user_id",
    "active",
    "label",
    "inbound_agent",
    "outbound_only",
    "example_context",
    "number",
    "telephony_provider",
    "telephony_account_connection",
}


def sdk(live_server: LiveServer, org: OrgCreds) -> Vocode:
    return Vocode(token=org.token, base_url=live_server.url + "/vocode")


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _account_id(db: Database, org: OrgCreds) -> str:
    async with db.session() as session:
        account = await session.scalar(select(CarrierAccount).where(CarrierAccount.org_id == org.org_id))
    assert account is not None
    return account.id


async def test_seed_buy_with_no_body(http: httpx.AsyncClient, org: OrgCreds) -> None:
    # The seed's curl example (004_dedf262559c2f022.txt): POST /v1/numbers/buy with only a token.
    response = await http.post("/vocode/v1/numbers/buy", headers=org.bearer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == NUMBER_KEYS
    assert body["user_id"] == org.org_id and body["active"] is True and body["inbound_agent"] is None
    assert body["number"].startswith("+1") and body["telephony_provider"] == "sandbox"
    # Give the number straight back: the sandbox's default area codes are shared with other tests.
    cancelled = await http.post(
        "/vocode/v1/numbers/cancel", params={"phone_number": body["number"]}, headers=org.bearer
    )
    assert cancelled.status_code == 200 and cancelled.json()["active"] is False
    assert (await v1_get(http, org, body["id"]))["status"] == "released"


async def test_buy_with_an_inline_agent_embeds_it(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    area = area_codes.take()
    bought = await call(client.numbers.buy_number, area_code=area, inbound_agent=INLINE_AGENT)
    assert bought.number.startswith(f"+1{area}5550") and bought.active is True
    agent = bought.inbound_agent
    assert agent is not None and agent.user_id == org.org_id and agent.name == "Receptionist"
    assert agent.prompt.content == "You answer the phone for Acme." and agent.prompt.id
    assert agent.initial_message == "Hello, Acme!" and agent.language == "en"
    assert [a.type for a in agent.actions] == ["action_transfer_call", "action_end_conversation"]
    assert agent.actions[0].config.phone_number == "+14155550142"
    assert agent.voice.type == "voice_azure" and agent.voice.voice_name == "en-US-JennyNeural"
    assert (agent.voice.pitch, agent.voice.rate) == (0, 15)
    assert agent.webhook is not None and agent.webhook.url == "https://hooks.example.com/v"
    assert agent.webhook.subscriptions == ["event_message", "event_phone_call_ended"]
    assert agent.interrupt_sensitivity == "high"

    # The embedded agent is the stored agent, read back from /v1.
    stored = (await http.get(f"/v1/agents/{agent.id}", headers=org.bearer)).json()
    assert stored["prompt"] == "You answer the phone for Acme." and stored["voice"]["provider"] == "azure"
    core = await v1_get(http, org, bought.number)
    assert core["inbound_agents"][0]["agent_id"] == agent.id
    await http.patch(
        f"/v1/agents/{agent.id}", json={"prompt": "New prompt", "initial_message": "Hi"}, headers=org.bearer
    )
    again = await call(client.numbers.get_number, phone_number=bought.number)
    assert again.inbound_agent.prompt.content == "New prompt" and again.inbound_agent.initial_message == "Hi"
    assert again.inbound_agent.prompt.id == agent.prompt.id

    page = await call(client.numbers.list_numbers, page=1, size=10)
    item = next(i for i in page.items if i.number == bought.number)
    assert item.inbound_agent == agent.id and page.total >= 1 and page.page == 1


async def test_inline_agent_with_an_empty_dtmf_action(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    # Vocode's action_dtmf has an empty config: the agent chooses the digits during the call.
    client = sdk(live_server, org)
    agent_params = AgentParams(
        prompt="Press through the phone tree.",
        voice="en-US-JennyNeural",
        # type given explicitly: with pydantic 2 the SDK drops a nested model's defaulted fields.
        actions=[DtmfActionParams(type="action_dtmf", config=EmptyActionConfig())],
    )
    bought = await call(client.numbers.buy_number, area_code=area_codes.take(), inbound_agent=agent_params)
    agent = bought.inbound_agent
    assert agent is not None and [a.type for a in agent.actions] == ["action_dtmf"]
    assert agent.actions[0].config is not None and agent.actions[0].id
    stored = (await http.get(f"/v1/agents/{agent.id}", headers=org.bearer)).json()
    assert [a["type"] for a in stored["actions"]] == ["send_dtmf"]
    assert not (stored["actions"][0].get("config") or {}).get("digits")

    # On update too: an inline AgentUpdateParams with the empty action updates the bound agent.
    raw = {
        "inbound_agent": {
            "actions": [{"type": "action_dtmf", "config": {}}, {"type": "action_end_conversation"}]
        }
    }
    updated = await http.post(
        "/vocode/v1/numbers/update", params={"phone_number": bought.number}, json=raw, headers=org.bearer
    )
    assert updated.status_code == 200, updated.text
    assert [a["type"] for a in updated.json()["inbound_agent"]["actions"]] == [
        "action_dtmf",
        "action_end_conversation",
    ]
    again = await call(client.numbers.get_number, phone_number=bought.number)
    assert again.inbound_agent.id == agent.id and len(again.inbound_agent.actions) == 2


async def test_list_sorts_by_a_column(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    low, high = sorted([area_codes.take(), area_codes.take()])
    # Created in this order; numbers and labels each in a different order.
    plan = [(high, "Bravo"), (low, "Charlie"), (low, "Alpha")]
    bought = []
    for area, label in plan:
        number = await call(client.numbers.buy_number, area_code=area)
        await call(client.numbers.update_number, phone_number=number.number, label=label)
        bought.append(number.number)
    n0, n1, n2 = bought

    async def order(**kwargs: Any) -> list[str]:
        page = await call(client.numbers.list_numbers, size=10, **kwargs)
        return [i.number for i in page.items]

    assert await order() == [n2, n1, n0]  # newest first
    assert await order(sort_desc=False) == [n0, n1, n2]
    assert await order(sort_column="label", sort_desc=False) == [n2, n0, n1]
    assert await order(sort_column="label", sort_desc=True) == [n1, n0, n2]
    assert await order(sort_column="number", sort_desc=False) == sorted(bought)
    assert await order(sort_column="number", sort_desc=True) == sorted(bought, reverse=True)
    paged = await call(client.numbers.list_numbers, page=2, size=2, sort_column="label", sort_desc=False)
    assert [i.number for i in paged.items] == [n1] and paged.total == 3 and paged.has_more is False
    # A column with no core counterpart is accepted and lists in creation order.
    assert await order(sort_column="telephony_provider", sort_desc=False) == [n0, n1, n2]


async def test_update_link_and_cancel(
    live_server: LiveServer, http: httpx.AsyncClient, db: Database, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    other = await make_agent(
        http, org, "Other", voice={"provider": "elevenlabs", "voice_id": "v1", "stability": 0.3}
    )
    bought = await call(client.numbers.buy_number, area_code=area_codes.take())
    updated = await call(
        client.numbers.update_number,
        phone_number=bought.number,
        label="Sales",
        outbound_only=True,
        example_context={"customer": "Jane"},
        inbound_agent=other["id"],
    )
    assert updated.label == "Sales" and updated.outbound_only is True
    assert updated.example_context == {"customer": "Jane"}
    assert updated.inbound_agent.id == other["id"] and updated.inbound_agent.voice.type == "voice_eleven_labs"
    assert updated.inbound_agent.voice.stability == 0.3
    core = await v1_get(http, org, bought.number)
    assert core["name"] == "Sales" and core["outbound"] is True

    # Only what is sent changes (the SDK sends Fern's "undefined" for the rest).
    renamed = await call(client.numbers.update_number, phone_number=bought.number, label="Sales 2")
    assert (
        renamed.label == "Sales 2"
        and renamed.outbound_only is True
        and renamed.inbound_agent.id == other["id"]
    )
    # An inline agent update changes the bound agent itself.
    tuned = await call(
        client.numbers.update_number,
        phone_number=bought.number,
        inbound_agent={"initial_message": "Welcome", "prompt": {"content": "Be brief."}},
    )
    assert tuned.inbound_agent.id == other["id"] and tuned.inbound_agent.initial_message == "Welcome"
    assert tuned.inbound_agent.prompt.content == "Be brief."

    cancelled = await call(client.numbers.cancel_number, phone_number=bought.number)
    assert cancelled.active is False and cancelled.number == bought.number
    with pytest.raises(ApiError) as gone:
        await call(client.numbers.get_number, phone_number=bought.number)
    assert gone.value.status_code == 404 and "detail" in gone.value.body

    # Link: a number the sandbox account holds at the carrier but Numberplane does not.
    account_id = await _account_id(db, org)
    held = f"+1{area_codes.take()}5550111"
    async with db.session() as session:
        session.add(
            SandboxNumber(phone_number=held, carrier_number_id="SBlink" + held[1:], account_id=account_id)
        )
        await session.commit()
    linked = await call(
        client.numbers.link_number,
        phone_number=held,
        telephony_account_connection=account_id,
        inbound_agent={"prompt": "Linked prompt", "voice": {"type": "voice_rime", "speaker": "abbie"}},
    )
    assert linked.number == held and linked.inbound_agent.prompt.content == "Linked prompt"
    assert linked.inbound_agent.voice.type == "voice_rime" and linked.inbound_agent.voice.speaker == "abbie"
    core = await v1_get(http, org, held)
    assert core["origin"] == "imported" and core["carrier_account_id"] == account_id
    page = await call(client.numbers.list_numbers, size=100)
    assert next(i for i in page.items if i.number == held).telephony_account_connection == account_id


async def test_errors_and_tenancy(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    db: Database,
    org: OrgCreds,
    other_org: OrgCreds,
    area_codes,
) -> None:
    mine, theirs = sdk(live_server, org), sdk(live_server, other_org)
    foreign_agent = await make_agent(http, other_org, "Theirs")
    bought = await call(mine.numbers.buy_number, area_code=area_codes.take())
    for fn, kwargs in (
        (theirs.numbers.get_number, {}),
        (theirs.numbers.update_number, {"label": "Stolen"}),
        (theirs.numbers.cancel_number, {}),
    ):
        with pytest.raises(ApiError) as denied:
            await call(fn, phone_number=bought.number, **kwargs)
        assert denied.value.status_code == 404
    page = await call(theirs.numbers.list_numbers)
    assert bought.number not in [i.number for i in page.items]
    assert (await v1_get(http, org, bought.number))["status"] == "active"

    before = await v1_count(http, org)
    agents_before = len((await http.get("/v1/agents", headers=org.bearer)).json()["data"])
    with pytest.raises(ApiError) as foreign:
        await call(mine.numbers.buy_number, area_code=area_codes.take(), inbound_agent=foreign_agent["id"])
    assert foreign.value.status_code == 404
    with pytest.raises(UnprocessableEntityError) as invalid:
        await call(
            mine.numbers.buy_number,
            area_code=area_codes.take(),
            inbound_agent={**INLINE_AGENT, "webhook": {"url": "not a url", "subscriptions": []}},
        )
    assert invalid.value.body.detail and invalid.value.body.detail[0].loc[0] == "body"
    with pytest.raises(ApiError) as bad_account:
        await call(mine.numbers.buy_number, area_code=area_codes.take(), telephony_account_connection="nope")
    assert bad_account.value.status_code == 404
    with pytest.raises(ApiError) as foreign_account:
        await call(
            mine.numbers.link_number,
            phone_number="+14157774470",
            telephony_account_connection=await _account_id(db, other_org),
            inbound_agent=INLINE_AGENT,
        )
    assert foreign_account.value.status_code == 404
    assert await v1_count(http, org) == before
    assert len((await http.get("/v1/agents", headers=org.bearer)).json()["data"]) == agents_before

    unauthorized = Vocode(token="key_nope.nope", base_url=live_server.url + "/vocode")
    with pytest.raises(ApiError) as denied:
        await call(unauthorized.numbers.list_numbers)
    assert denied.value.status_code == 401 and isinstance(denied.value.body["detail"], str)
