"""Who sent a carrier request (issue 10, items 2, 4 and 7): squatted identifiers cannot break another
org's calls, a Vonage token vouches for one body once, and every refusal is logged (rate-limited)."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from numberplane.routing import metrics
from numberplane.routing.carrier_auth import REFUSALS, RefusalLog, ReplayGuard, Verdict
from numberplane.routing.fastpath import VoiceFastPath
from numberplane.routing.verify import VonageClaims
from tests.routing.world import Account, World

CALLER = "+12125550123"
SQUATTERS = 25
VERIFY_LOG = "numberplane.routing.verify"


@pytest.fixture(params=["framework", "fastpath"])
async def client(app, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    served = app if request.param == "framework" else VoiceFastPath(app, app)
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        yield c


def _telnyx_keys() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.b64encode(public).decode()


async def _account(world: World, carrier: str, identity: dict[str, str], **kw: Any) -> Account:
    """An account of ``carrier`` claiming ``identity`` with keys of its own."""
    if carrier == "twilio":
        return await world.add_account(carrier, identity, {"auth_token": secrets.token_hex(16)}, **kw)
    if carrier == "signalwire":
        creds = {"api_token": "PT" + secrets.token_hex(8), "signing_key": "PSK_" + secrets.token_hex(12)}
        return await world.add_account(carrier, {**identity, "space": "example"}, creds, **kw)
    if carrier == "telnyx":
        private, public = _telnyx_keys()
        config = {**identity, "public_key": public}
        return await world.add_account(carrier, config, {"api_key": "KEY1"}, private_key=private, **kw)
    creds = {"api_secret": secrets.token_hex(8), "signature_secret": secrets.token_hex(24)}
    return await world.add_account(carrier, identity, creds, **kw)


def _identity(carrier: str) -> dict[str, str]:
    return {
        "twilio": {"account_sid": "AC" + secrets.token_hex(16)},
        "signalwire": {"project_id": str(uuid.uuid4())},
        "telnyx": {"account_sid": str(uuid.uuid4()), "connection_id": "1568109700606592442"},
        "vonage": {"api_key": secrets.token_hex(4)},
    }[carrier]


async def _call(
    client: httpx.AsyncClient, world: World, carrier: str, account: Account, to: str
) -> httpx.Response:
    """A call to ``to``, signed the carrier's way with ``account``'s own key."""
    params = {"CallSid": "CA" + secrets.token_hex(8), "From": CALLER, "To": to}
    if carrier == "twilio":
        return await world.post(client, world.twilio_request(account, params))
    if carrier == "signalwire":
        return await world.post(client, world.signalwire_request(account, params))
    if carrier == "telnyx":
        return await world.post(client, world.telnyx_request(account, params))
    body = json.dumps({"to": to.lstrip("+"), "from": CALLER.lstrip("+"), "uuid": "u-1"}).encode()
    token = world.vonage_token(account, body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return await client.post("/voice/vonage/answer", content=body, headers=headers)


def _connects_to(response: httpx.Response, carrier: str) -> str | None:
    """The stream URL the answer connects the call to (None: not connected to an agent)."""
    assert response.status_code == 200, (response.status_code, response.text)
    if carrier == "vonage":
        first = response.json()[0]
        return first["endpoint"][0].get("uri") if first.get("action") == "connect" else None
    root = ET.fromstring(response.content)
    stream = root.find("./Connect/Stream")
    return stream.get("url") if stream is not None else None


@pytest.mark.parametrize("carrier", ["twilio", "signalwire", "telnyx", "vonage"])
async def test_a_squatted_identifier_cannot_break_or_take_another_orgs_calls(
    client: httpx.AsyncClient, world: World, other_world: World, carrier: str
) -> None:
    identity = _identity(carrier)
    # Another org got there first: 25 accounts claiming the victim's identifier, inserted
    # directly (the worst case: as if each had passed the ownership check somehow).
    squatters = [await _account(other_world, carrier, identity) for _ in range(SQUATTERS)]
    victim = await _account(world, carrier, identity)
    agent = await world.agent(stream_url="wss://victim.example.com/agent")
    number = await world.number(victim, agents=[(agent, None, 1.0)])

    # The genuine signed request routes to the victim's agent (before: 403, the 20 accounts
    # the directory loaded were all squatters').
    response = await _call(client, world, carrier, victim, number.phone_number)
    assert _connects_to(response, carrier) == "wss://victim.example.com/agent"

    # A squatter signing with its own key is verified as itself, so the victim's number is not
    # its number: "not in service", never the victim's agent.
    stolen = await _call(client, world, carrier, squatters[0], number.phone_number)
    assert _connects_to(stolen, carrier) is None


async def test_a_vonage_token_without_payload_hash_vouches_for_no_body(
    client: httpx.AsyncClient, world: World
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/v")
    number = await world.number(world.accounts["vonage"], agents=[(agent, None, 1.0)])
    body = json.dumps({"to": number.phone_number.lstrip("+"), "from": "12125550199", "uuid": "u"}).encode()
    token = world.vonage_token(world.accounts["vonage"])  # no payload_hash claim
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = await client.post("/voice/vonage/answer", content=body, headers=headers)
    assert response.status_code == 403 and response.content == b""
    # A GET carries no body: its token may go without the hash (the query is then not covered,
    # but the token is still good once only).
    query = f"to={number.phone_number.lstrip('+')}&from=12125550123&uuid=u2"
    fresh = world.vonage_token(world.accounts["vonage"])
    ok = await client.get(f"/voice/vonage/answer?{query}", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200 and ok.json()[0]["action"] == "connect"


async def test_a_vonage_token_is_accepted_once(client: httpx.AsyncClient, world: World) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/v")
    number = await world.number(world.accounts["vonage"], agents=[(agent, None, 1.0)])
    body = json.dumps({"to": number.phone_number.lstrip("+"), "from": "12125550123", "uuid": "u"}).encode()
    token = world.vonage_token(world.accounts["vonage"], body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    first = await client.post("/voice/vonage/answer", content=body, headers=headers)
    assert first.status_code == 200 and first.json()[0]["action"] == "connect"
    replayed = await client.post("/voice/vonage/answer", content=body, headers=headers)
    assert replayed.status_code == 403 and replayed.content == b""
    # Another token for the same call (Vonage's own retry signs afresh) is fine.
    again = world.vonage_token(world.accounts["vonage"], body)
    retry = await client.post(
        "/voice/vonage/answer", content=body, headers={**headers, "Authorization": f"Bearer {again}"}
    )
    assert retry.status_code == 200


def test_replay_memory_is_bounded_and_forgets_expired_tokens() -> None:
    now = [1_000_000.0]
    guard = ReplayGuard(max_entries=100, clock=lambda: now[0])
    claims = [VonageClaims(jti=f"j{i}", expires=now[0] + 300) for i in range(250)]
    assert all(guard.first_use("acct", c) for c in claims)
    assert len(guard) == 100  # the oldest went first
    assert not guard.first_use("acct", claims[-1])
    assert guard.first_use("other-account", claims[-1])  # token ids are per account
    now[0] += 301  # every token has expired: none is remembered
    assert guard.first_use("acct", VonageClaims(jti="new", expires=now[0] + 300))
    assert len(guard) == 1


async def test_refused_signatures_are_logged_with_carrier_account_and_reason(
    client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    REFUSALS.reset()
    account = world.accounts["twilio"]
    number = await world.number(account)
    path, body, headers = world.twilio_request(
        account, {"CallSid": "CA1", "From": CALLER, "To": number.phone_number}
    )
    before = metrics.SIGNATURE_FAILURES.labels("twilio")._value.get()
    with caplog.at_level(logging.WARNING, logger=VERIFY_LOG):
        bad = await client.post(path, content=body, headers={**headers, "X-Twilio-Signature": "AAAA"})
        unknown = await world.post(
            client,
            world.twilio_request(
                account, {"AccountSid": "AC" + "0" * 32, "CallSid": "CA2", "To": world.fresh_number()}
            ),
        )
    assert bad.status_code == unknown.status_code == 403 and bad.content == b""
    lines = [r.getMessage() for r in caplog.records if r.name == VERIFY_LOG]
    assert len(lines) == 2, lines
    assert "refused a twilio request to /voice/twilio" in lines[0]
    assert f"account={account.id}" in lines[0] and "does not verify" in lines[0]
    assert "[bad_signature]" in lines[0] and f"claimed={account.config['account_sid']}" in lines[0]
    assert "[unknown_account]" in lines[1] and "AC" + "0" * 32 in lines[1]
    token = account.secrets["auth_token"]
    assert all(token not in line and "AAAA" not in line for line in lines)  # no secret, no signature
    assert metrics.SIGNATURE_FAILURES.labels("twilio")._value.get() == before + 2


async def test_a_flood_of_refusals_cannot_fill_the_log(
    client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    REFUSALS.reset()
    account = world.accounts["signalwire"]
    number = await world.number(account)
    path, body, headers = world.signalwire_request(account, {"CallSid": "CA1", "To": number.phone_number})
    before = metrics.SIGNATURE_FAILURES.labels("signalwire")._value.get()
    with caplog.at_level(logging.WARNING, logger=VERIFY_LOG):
        for i in range(60):
            forged = {**headers, "X-SignalWire-Signature": f"{i:040x}"}
            assert (await client.post(path, content=body, headers=forged)).status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == VERIFY_LOG]
    assert len(lines) == REFUSALS.per_window and all("signalwire" in line for line in lines)
    assert metrics.SIGNATURE_FAILURES.labels("signalwire")._value.get() == before + 60  # all counted


def test_the_refusal_log_sums_up_what_it_did_not_print(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = RefusalLog(per_window=3, window=60, clock=lambda: now[0])
    verdict = Verdict.refused("bad_signature", "X does not verify", account_id="a1", claimed="\x1b[31mred")
    with caplog.at_level(logging.WARNING, logger=VERIFY_LOG):
        for _ in range(10):
            refusals.note("telnyx", verdict, "/voice/telnyx")
        refusals.note("telnyx", Verdict.refused("stale", "old timestamp"))  # another reason: logged
        now[0] = 61
        refusals.note("telnyx", verdict)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6
    assert "refused 7 more telnyx requests (bad_signature)" in lines[4]
    assert "\x1b" not in "".join(lines) and "claimed=\\x1b[31mred" in lines[0]  # no terminal escapes


async def test_a_stale_telnyx_timestamp_says_so(
    client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    REFUSALS.reset()
    number = await world.number(world.accounts["telnyx"])
    old = int(time.time()) - 3600
    request = world.telnyx_request(world.accounts["telnyx"], {"To": number.phone_number}, ts=old)
    with caplog.at_level(logging.WARNING, logger=VERIFY_LOG):
        assert (await world.post(client, request)).status_code == 403
    assert any("[stale]" in r.getMessage() for r in caplog.records)
