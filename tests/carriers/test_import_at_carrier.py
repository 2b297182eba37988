"""Core flows at a carrier. Importing validates, then acts: a row that fails any check changes
nothing at the carrier. Buying with a new agent is one operation: a refused purchase leaves no
agent behind."""

from __future__ import annotations

import httpx
import pytest

from numberplane.agents.schemas import AgentCreate
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.errors import AppError
from numberplane.numbers import service as numbers
from numberplane.numbers.schemas import PhoneNumberBuy
from tests.carriers.test_reconcile import connect_twilio, voice_url
from tests.fakes.twilio import FakeTwilio
from tests.support import AreaCodes, OrgCreds


async def test_rows_that_fail_validation_change_nothing_at_the_carrier(
    client: httpx.AsyncClient,
    org: OrgCreds,
    other_org: OrgCreds,
    fake_twilio: FakeTwilio,
    area_codes: AreaCodes,
) -> None:
    area = area_codes.take()
    account_id = await connect_twilio(client, org, fake_twilio)
    taken, bad_agent, good = (f"+1{area}55501{n:02d}" for n in (40, 41, 42))
    for number in (taken, bad_agent, good):
        fake_twilio.add_owned(number, voice_url="https://old.example.com/voice")
    # Another org already holds `taken` (registered without a carrier account).
    held = await client.post(
        "/v1/phone-numbers/import", json={"numbers": [{"phone_number": taken}]}, headers=other_org.bearer
    )
    assert held.json()["created"] == 1
    before = len(fake_twilio.requests_for("update"))

    rows = [
        {"phone_number": taken, "carrier_account_id": account_id},
        {
            "phone_number": bad_agent,
            "carrier_account_id": account_id,
            "inbound_agents": [{"agent_id": "nope"}],
        },
        {"phone_number": good, "carrier_account_id": account_id},
    ]
    report = (
        await client.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=org.bearer)
    ).json()
    assert [(r["status"], (r.get("error") or {}).get("code")) for r in report["results"]] == [
        ("failed", "already_exists"),
        ("failed", "agent_not_found"),
        ("created", None),
    ]
    # Only the row that passed every check was touched at the carrier.
    updates = fake_twilio.requests_for("update")[before:]
    assert len(updates) == 1
    assert fake_twilio.by_number(good)["voice_url"] == voice_url("twilio")  # type: ignore[index]
    for untouched in (taken, bad_agent):
        assert fake_twilio.by_number(untouched)["voice_url"] == "https://old.example.com/voice"  # type: ignore[index]


async def test_a_purchase_the_carrier_refuses_takes_its_new_agent_with_it(
    client: httpx.AsyncClient, db: Database, org: OrgCreds, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    """Buying with a new agent is one core operation: the agent exists only if the number does."""
    account_id = await connect_twilio(client, org, fake_twilio)
    actor = Actor(kind="api_key", id=org.key_id, org_id=org.org_id)
    agents_before = (await client.get("/v1/agents", headers=org.bearer)).json()["data"]
    fake_twilio.faults.fail("buy", 400, code=21422, message="not available")
    with pytest.raises(AppError) as refused:
        await numbers.buy(
            db=db,
            actor=actor,
            data=PhoneNumberBuy(area_code=area_codes.take(), carrier_account_id=account_id),
            new_inbound_agent=AgentCreate(name="Born with the number"),
        )
    assert (refused.value.status, refused.value.code) == (409, "number_unavailable")
    assert (await client.get("/v1/agents", headers=org.bearer)).json()["data"] == agents_before

    bought = await numbers.buy(
        db=db,
        actor=actor,
        data=PhoneNumberBuy(area_code=area_codes.take(), carrier_account_id=account_id),
        new_inbound_agent=AgentCreate(name="Born with the number"),
    )
    [binding] = bought.number.inbound_agents
    agent = (await client.get(f"/v1/agents/{binding.agent_id}", headers=org.bearer)).json()
    assert agent["name"] == "Born with the number"
