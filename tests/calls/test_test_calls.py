"""POST /v1/test-calls: the number's carrier calls the running server over HTTP, signed with the
account's own credentials, then sends its status callbacks; the settled record comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from numberplane.app import create_app
from numberplane.kernel.db import Database
from numberplane.kernel.settings import Settings, get_settings
from tests.fakes.twilio import FakeTwilio
from tests.routing.world import World
from tests.support import AreaCodes, LiveServer, OrgCreds, free_port, operator_base_url, wait_for


@pytest.fixture(scope="module")
def own_server(settings: Settings, db_url: str) -> Iterator[LiveServer]:
    """The app on loopback with NUMBERPLANE_PUBLIC_URL naming itself, as a fresh install has it."""
    port = free_port()
    mine = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    server = LiveServer(create_app(settings=mine, db=Database(db_url)), port=port).start()
    yield server
    server.stop()


@pytest.fixture
async def api(own_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=own_server.url, timeout=30) as c:
        yield c


async def test_sandbox_number_answered_and_completed(
    api: httpx.AsyncClient, world: World, org: OrgCreds, db: Database
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/tc", versions=3)
    number = await world.number(world.sandbox, agents=[(agent, None, 1.0)])
    national = f"({number.phone_number[2:5]}) {number.phone_number[5:8]}-{number.phone_number[8:]}"
    response = await api.post(
        "/v1/test-calls",
        json={"to": national, "from": "+12125550123", "duration_s": 42, "answer": True},
        headers=org.bearer,
    )
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["object"] == "call" and call["carrier"] == "sandbox"
    assert call["phone_number_id"] == number.id and call["from"] == "+12125550123"
    assert call["status"] == "completed" and call["duration_s"] == 42
    assert call["answered_at"] is not None and call["ended_at"] is not None
    assert (call["outcome"], call["agent_id"], call["agent_version"]) == ("agent_stream", agent, 3)
    assert [s["step"] for s in call["trace"]] == ["number", "country", "webhook", "agent"]
    answer = call["answer"]
    assert answer["status"] == 200 and answer["content_type"].startswith("application/xml")
    assert '<Stream url="wss://agents.example.com/tc">' in answer["body"]
    assert call["carrier_call_id"] in answer["body"]  # the call id the agent receives
    again = await api.get(f"/v1/calls/{call['id']}", headers=org.bearer)
    assert again.status_code == 200
    assert {k: v for k, v in call.items() if k != "answer"} == again.json()


async def test_unanswered_call(api: httpx.AsyncClient, world: World, org: OrgCreds) -> None:
    number = await world.number(world.sandbox)  # no agent, no fallback: not in service
    response = await api.post(
        "/v1/test-calls", json={"to": number.phone_number, "answer": False}, headers=org.bearer
    )
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["status"] == "no_answer" and call["answered_at"] is None
    assert (call["outcome"], call["reason"]) == ("not_in_service", "no_agent")
    assert "not in service" in call["answer"]["body"]
    assert call["trace"][-1]["step"] == "fallback" and call["trace"][-1]["result"] == "none"


@pytest.mark.parametrize("carrier", ["twilio", "signalwire", "vonage"])
async def test_real_carrier_accounts_sign_with_their_credentials(
    api: httpx.AsyncClient, world: World, org: OrgCreds, carrier: str
) -> None:
    agent = await world.agent(sip_uri="sip:bot@sip.example.com")
    number = await world.number(world.accounts[carrier], agents=[(agent, None, 1.0)])
    response = await api.post(
        "/v1/test-calls", json={"to": number.phone_number, "duration_s": 7}, headers=org.bearer
    )
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["carrier"] == carrier and call["outcome"] == "agent_sip"
    assert call["status"] == "completed" and call["duration_s"] == 7
    assert call["answer"]["status"] == 200


async def test_to_must_be_one_of_the_orgs_numbers(
    api: httpx.AsyncClient, world: World, org: OrgCreds, other_org: OrgCreds
) -> None:
    number = await world.number(world.sandbox)
    for to in ("+14155550199", "not a number", number.id):
        response = await api.post("/v1/test-calls", json={"to": to}, headers=other_org.bearer)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "to"
    telnyx = await world.number(world.accounts["telnyx"])
    refused = await api.post("/v1/test-calls", json={"to": telnyx.phone_number}, headers=org.bearer)
    assert refused.status_code == 422 and "private key" in refused.json()["errors"][0]["message"]
    bad_from = await api.post(
        "/v1/test-calls", json={"to": number.phone_number, "from": "nobody"}, headers=org.bearer
    )
    assert bad_from.status_code == 422 and bad_from.json()["errors"][0]["field"] == "from"
    assert (await api.post("/v1/test-calls", json={"to": number.phone_number})).status_code == 401


async def test_a_number_bought_at_the_fake_twilio_rings_through_its_own_webhook(
    api: httpx.AsyncClient,
    own_server: LiveServer,
    org: OrgCreds,
    area_codes: AreaCodes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole path a new user sees: connect a Twilio account (the fake, checking requests as
    Twilio does), buy a number there (its voice URL set to this server), ring it."""
    fake = FakeTwilio()
    fake.start()
    try:
        operator_base_url(monkeypatch, "twilio", fake.url)
        # The buy flow tells the carrier the process's public URL: this server's own.
        monkeypatch.setattr(get_settings(), "public_url", own_server.url)
        account = await api.post(
            "/v1/carrier-accounts",
            json={
                "carrier": "twilio",
                "name": "Twilio",
                "credentials": {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
                "timeout_seconds": 2,
            },
            headers=org.bearer,
        )
        assert account.status_code == 201, account.text
        number = f"+1{area_codes.take()}5550100"
        bought = await api.post(
            "/v1/phone-numbers",
            json={"phone_number": number, "carrier_account_id": account.json()["id"]},
            headers=org.bearer,
        )
        assert bought.status_code in (201, 202), bought.text
        at_carrier = fake.by_number(number)
        assert at_carrier is not None and at_carrier["voice_url"] == f"{own_server.url}/voice/twilio"
        response = await api.post(
            "/v1/test-calls", json={"to": number, "duration_s": 12, "answer": True}, headers=org.bearer
        )
        assert response.status_code == 201, response.text
        call = response.json()
        assert call["carrier"] == "twilio" and call["phone_number_id"] == bought.json()["id"]
        assert call["status"] == "completed" and call["duration_s"] == 12
        assert call["outcome"] == "not_in_service" and call["answer"]["status"] == 200
    finally:
        fake.stop()


async def test_the_running_server_writes_records_behind_its_answers(
    api: httpx.AsyncClient, own_server: LiveServer, world: World, org: OrgCreds
) -> None:
    """No explicit flush: the recorder started by the app's lifespan writes within its interval."""
    agent = await world.agent(stream_url="wss://agents.example.com/behind")
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    world.public_url = own_server.url  # signed for the URL this server is reached at
    call = {"CallSid": "CA-behind-1", "From": "+12125550123", "To": number.phone_number}
    answer = await world.post(api, world.twilio_request(world.accounts["twilio"], call))
    assert answer.status_code == 200 and b"<Stream" in answer.content

    async def recorded() -> list[dict[str, object]]:
        response = await api.get("/v1/calls", params={"phone_number_id": number.id}, headers=org.bearer)
        return list(response.json()["data"])

    (record,) = await wait_for(recorded, timeout=10)
    assert record["carrier_call_id"] == "CA-behind-1" and record["agent_id"] == agent


async def test_an_unreachable_public_url_is_a_clear_502(
    settings: Settings, db: Database, world: World, org: OrgCreds
) -> None:
    nowhere = settings.model_copy(
        update={"public_url": f"http://127.0.0.1:{free_port()}", "test_call_timeout_seconds": 2.0}
    )
    app = create_app(settings=nowhere, db=db)
    number = await world.number(world.sandbox)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        response = await c.post("/v1/test-calls", json={"to": number.phone_number}, headers=org.bearer)
    await app.state.routing.aclose()
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["code"] == "test_call_failed" and nowhere.public_url in body["detail"]
