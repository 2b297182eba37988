"""Carrier endpoints end to end: real signed requests, answers parsed back."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from numberplane.routing import metrics
from numberplane.routing.fastpath import VoiceFastPath
from numberplane.routing.handlers import parse_form
from tests.routing.world import World

CALLER = "+12125550123"


@pytest.fixture(params=["framework", "fastpath", "served"])
async def client(app, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """Every endpoint test runs through the FastAPI routes, through the pure-ASGI fast path, and
    through a real server (uvicorn with Numberplane's protocol, which answers the carrier
    endpoints without ASGI: ``kernel.serving.HttpProtocol``)."""
    if request.param == "served":
        live = request.getfixturevalue("live_server")
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as c:
            yield c
        return
    served = app if request.param == "framework" else VoiceFastPath(app, app)
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        yield c


def twiml(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


def stream_params(root: ET.Element) -> dict[str, str | None]:
    assert root[0].tag == "Connect", ET.tostring(root)
    stream = root[0][0]
    assert stream.tag == "Stream"
    return {"url": stream.get("url"), **{p.get("name") or "": p.get("value") for p in stream}}


async def test_twilio_connects_a_stream(client: httpx.AsyncClient, world: World) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/a", versions=2)
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    request = world.twilio_request(
        world.accounts["twilio"], {"CallSid": "CA100", "From": CALLER, "To": number.phone_number}
    )
    params = stream_params(twiml(await world.post(client, request)))
    assert params == {
        "url": "wss://agents.example.com/a",
        "agent_id": agent,
        "agent_version": "2",
        "call_id": "CA100",
        "phone_number_id": number.id,
        "to": number.phone_number,
        "from": CALLER,
    }


def _lookups() -> float:
    """Route lookups so far, as ``/metrics`` exposes them (every result)."""
    return sum(
        metrics.REGISTRY.get_sample_value("numberplane_route_cache_lookups_total", {"result": result}) or 0.0
        for result in ("hit", "miss", "bypass")
    )


async def test_a_carrier_request_looks_the_called_number_up_once(
    client: httpx.AsyncClient, world: World
) -> None:
    """The signature check and the decision read one snapshot of the called number: one route
    lookup a request, so ``numberplane_route_cache_lookups_total`` counts requests (a cold call
    is one miss, not a miss and a hit)."""
    agent = await world.agent(stream_url="wss://agents.example.com/once")
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    vonage = await world.number(world.accounts["vonage"], agents=[(agent, None, 1.0)])
    call = {"CallSid": "CA-once", "From": CALLER, "To": number.phone_number}
    before = _lookups()
    twiml(await world.post(client, world.twilio_request(world.accounts["twilio"], call)))
    assert _lookups() == before + 1
    status = {**call, "CallStatus": "completed", "CallDuration": "7"}
    response = await world.post(
        client, world.twilio_request(world.accounts["twilio"], status, path="/voice/twilio/status")
    )
    assert response.status_code == 204
    assert _lookups() == before + 2
    query = {"to": vonage.phone_number.lstrip("+"), "from": CALLER.lstrip("+"), "uuid": "once-1"}
    token = world.vonage_token(world.accounts["vonage"], json.dumps(query, separators=(",", ":")).encode())
    answer = await client.get(
        "/voice/vonage/answer?" + urlencode(query), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200 and answer.json()[0]["action"] == "connect"
    assert _lookups() == before + 3


async def test_sandbox_numbers_answer_on_the_twilio_endpoint(client: httpx.AsyncClient, world: World) -> None:
    agent = await world.agent(sip_uri="sip:bot@sip.example.com")
    number = await world.number(world.sandbox, agents=[(agent, 1, 1.0)])
    request = world.twilio_request(
        world.sandbox, {"CallSid": "CA1", "From": CALLER, "To": number.phone_number}
    )
    root = twiml(await world.post(client, request))
    assert root[0].tag == "Dial" and (root[0][0].text or "").startswith("sip:bot@sip.example.com?")


@pytest.mark.parametrize("scheme", ["form", "raw"])
async def test_signalwire_laml(client: httpx.AsyncClient, world: World, scheme: str) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/sw")
    number = await world.number(world.accounts["signalwire"], agents=[(agent, None, 1.0)])
    request = world.signalwire_request(
        world.accounts["signalwire"],
        {"CallSid": "sw-1", "From": CALLER, "To": number.phone_number},
        scheme=scheme,
    )
    assert stream_params(twiml(await world.post(client, request)))["agent_id"] == agent


async def test_signalwire_laml_webhooks_redirect_and_fallback(
    client: httpx.AsyncClient, world: World
) -> None:
    handler = {
        "type": "laml_webhooks",
        "request_url": "https://customer.example.com/laml",
        "request_method": "POST",
        "fallback_url": "https://customer.example.com/laml-fallback",
        "fallback_method": "GET",
    }
    number = await world.number(world.accounts["signalwire"], call_handler=handler)
    account = world.accounts["signalwire"]
    call = {"CallSid": "sw-2", "From": CALLER, "To": number.phone_number}
    root = twiml(await world.post(client, world.signalwire_request(account, call)))
    assert root[0].tag == "Redirect" and root[0].text == "https://customer.example.com/laml"
    assert root[0].get("method") == "POST"
    fallback = world.signalwire_request(
        account, {**call, "ErrorCode": "11200"}, path="/voice/signalwire/fallback"
    )
    root = twiml(await world.post(client, fallback))
    assert root[0].text == "https://customer.example.com/laml-fallback" and root[0].get("method") == "GET"


async def test_telnyx_texml(client: httpx.AsyncClient, world: World) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/tx")
    number = await world.number(world.accounts["telnyx"], agents=[(agent, None, 1.0)])
    request = world.telnyx_request(
        world.accounts["telnyx"], {"CallSid": "v3:abc", "From": CALLER, "To": number.phone_number}
    )
    params = stream_params(twiml(await world.post(client, request)))
    assert params["call_id"] == "v3:abc" and params["agent_id"] == agent


async def test_telnyx_stale_timestamp_is_refused(client: httpx.AsyncClient, world: World) -> None:
    number = await world.number(world.accounts["telnyx"])
    request = world.telnyx_request(
        world.accounts["telnyx"], {"CallSid": "x", "To": number.phone_number}, ts=int(time.time()) - 600
    )
    response = await world.post(client, request)
    assert response.status_code == 403 and response.content == b""


async def test_vonage_get_answer_with_ncco(client: httpx.AsyncClient, world: World) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/vg")
    number = await world.number(world.accounts["vonage"], agents=[(agent, None, 1.0)])
    query = {
        "to": number.phone_number.lstrip("+"),
        "from": CALLER.lstrip("+"),
        "uuid": "aaaa-1",
        "conversation_uuid": "CON-1",
    }
    payload = json.dumps(query, separators=(",", ":")).encode()
    token = world.vonage_token(world.accounts["vonage"], payload)
    response = await client.get(
        "/voice/vonage/answer?" + urlencode(query), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    [connect] = response.json()
    assert connect["action"] == "connect" and connect["from"] == number.phone_number.lstrip("+")
    [endpoint] = connect["endpoint"]
    assert endpoint["type"] == "websocket" and endpoint["uri"] == "wss://agents.example.com/vg"
    assert endpoint["headers"]["call_id"] == "aaaa-1" and endpoint["headers"]["from"] == CALLER


async def test_vonage_post_answer(client: httpx.AsyncClient, world: World) -> None:
    number = await world.number(world.accounts["vonage"], fallback={"number": "+14155550177"})
    body = json.dumps(
        {"to": number.phone_number.lstrip("+"), "from": CALLER.lstrip("+"), "uuid": "u2"}
    ).encode()
    token = world.vonage_token(world.accounts["vonage"], body)
    response = await client.post(
        "/voice/vonage/answer",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()[0]["endpoint"] == [{"type": "phone", "number": "14155550177"}]


async def test_vonage_tampered_body_is_refused(client: httpx.AsyncClient, world: World) -> None:
    number = await world.number(world.accounts["vonage"])
    body = json.dumps({"to": number.phone_number.lstrip("+"), "from": "12125550123", "uuid": "u"}).encode()
    token = world.vonage_token(world.accounts["vonage"], body)
    response = await client.post(
        "/voice/vonage/answer",
        content=body.replace(b"12125550123", b"12125550199"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 403 and response.content == b""


# -- Refusals --------------------------------------------------------------------------------------


async def test_unverifiable_requests_get_a_bare_403(client: httpx.AsyncClient, world: World) -> None:
    number = await world.number(world.accounts["twilio"])
    account = world.accounts["twilio"]
    call = {"CallSid": "CA1", "From": CALLER, "To": number.phone_number}
    path, body, headers = world.twilio_request(account, call)
    attempts = [
        (path, body, {**headers, "X-Twilio-Signature": "AAAA"}),  # wrong signature
        (path, body, {k: v for k, v in headers.items() if k != "X-Twilio-Signature"}),  # unsigned
        (path, body + b"&Extra=1", headers),  # body changed after signing
        (path, body.replace(account.config["account_sid"].encode(), b"ACdoesnotexist"), headers),
    ]
    # Signed for the URL the proxy shows rather than the one configured at the carrier.
    shown = RequestValidator(account.secrets["auth_token"]).compute_signature(
        "http://testserver/voice/twilio", {"AccountSid": account.config["account_sid"], **call}
    )
    attempts.append((path, body, {**headers, "X-Twilio-Signature": shown}))
    for attempt in attempts:
        response = await world.post(client, attempt)
        assert response.status_code == 403
        assert response.content == b""
        assert "set-cookie" not in response.headers


@pytest.mark.parametrize("carrier", ["signalwire", "telnyx"])
async def test_unsigned_signalwire_and_telnyx_are_refused(
    client: httpx.AsyncClient, world: World, carrier: str
) -> None:
    response = await client.post(
        f"/voice/{carrier}",
        content=urlencode({"To": "+14155550100", "From": CALLER, "AccountSid": "x"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403 and response.content == b""


async def test_vonage_without_jwt_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/voice/vonage/answer?to=14155550100&from=12125550123")
    assert response.status_code == 403 and response.content == b""


async def test_another_accounts_number_is_not_in_service(
    client: httpx.AsyncClient, world: World, other_world: World
) -> None:
    """A verified request from account B about account A's number learns nothing about it."""
    agent = await world.agent(stream_url="wss://agents.example.com/secret")
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    call = {"CallSid": "CA9", "From": CALLER, "To": number.phone_number}
    for account in (
        other_world.accounts["twilio"],
        world.sandbox,
    ):  # other org's account; same org's other one
        root = twiml(await world.post(client, world.twilio_request(account, call)))
        assert [c.tag for c in root] == ["Say", "Hangup"]
        assert b"secret" not in ET.tostring(root)


async def test_unknown_and_released_numbers_are_not_in_service(
    client: httpx.AsyncClient, world: World
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/x")
    released = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)], status="released")
    for to in (world.fresh_number(), released.phone_number, "not-a-number"):
        request = world.twilio_request(world.accounts["twilio"], {"CallSid": "CA2", "From": CALLER, "To": to})
        root = twiml(await world.post(client, request))
        assert [c.tag for c in root] == ["Say", "Hangup"]
        assert "not in service" in (root[0].text or "")


# -- Status callbacks ------------------------------------------------------------------------------


async def test_status_callbacks(client: httpx.AsyncClient, world: World) -> None:
    status = {"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "42", "To": "+14155550100"}
    ok = [
        world.twilio_request(world.accounts["twilio"], status, path="/voice/twilio/status"),
        world.signalwire_request(world.accounts["signalwire"], status, path="/voice/signalwire/status"),
        world.telnyx_request(world.accounts["telnyx"], status, path="/voice/telnyx/status"),
    ]
    for request in ok:
        response = await world.post(client, request)
        assert response.status_code == 204, request[0]
        path, body, headers = request
        forged = await world.post(client, (path, body + b"&x=1", headers))
        assert forged.status_code == 403 and forged.content == b""
    body = json.dumps({"uuid": "u1", "status": "completed", "to": "14155550100"}).encode()
    token = world.vonage_token(world.accounts["vonage"], body)
    response = await client.post(
        "/voice/vonage/status", content=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert (await client.post("/voice/vonage/event", content=body)).status_code == 403


# -- Number formats --------------------------------------------------------------------------------

TO_FORMS = [
    "+{e164}",
    "{e164}",
    "{national}",
    "({area}) {exchange}-{line}",
    "1 {area} {exchange} {line}",
    "sip:+{e164}@sip.twilio.com;user=phone",
    "sip:{e164}@carrier.example.com:5060",
    "sips:+{e164}@sip.example.com",
    "tel:+1-{area}-{exchange}-{line}",
    "tel:+{e164};phone-context=example.com",
]


@pytest.mark.parametrize("form", TO_FORMS)
async def test_every_to_form_reaches_the_same_number(
    client: httpx.AsyncClient, world: World, form: str
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/fmt")
    number = await world.number(world.accounts["twilio"], agents=[(agent, None, 1.0)])
    digits = number.phone_number[1:]
    area, exchange, line = digits[1:4], digits[4:7], digits[7:]
    to = form.format(e164=digits, national=digits[1:], area=area, exchange=exchange, line=line)
    request = world.twilio_request(
        world.accounts["twilio"], {"CallSid": "CAfmt", "From": CALLER, "To": to, "ToCountry": "US"}
    )
    params = stream_params(twiml(await world.post(client, request)))
    assert params["phone_number_id"] == number.id
    assert params["to"] == number.phone_number


FROM_FORMS = [
    "+12125550123",
    "12125550123",
    "2125550123",
    "(212) 555-0123",
    "sip:+12125550123@sip.example.com;user=phone",
    "sip:12125550123@10.0.0.1:5060",
    "tel:+1-212-555-0123",
]


@pytest.mark.parametrize("form", FROM_FORMS)
async def test_every_from_form_is_the_same_caller(client: httpx.AsyncClient, world: World, form: str) -> None:
    """The caller is normalised too: the country allow-list sees it, and the agent receives E.164."""
    agent = await world.agent(stream_url="wss://agents.example.com/from")
    number = await world.number(
        world.accounts["twilio"], agents=[(agent, None, 1.0)], allowed_inbound_countries=["US"]
    )
    request = world.twilio_request(
        world.accounts["twilio"],
        {"CallSid": "CAf", "From": form, "To": number.phone_number, "FromCountry": "US"},
    )
    assert stream_params(twiml(await world.post(client, request)))["from"] == "+12125550123"


async def test_number_formats_on_vonage_and_telnyx(client: httpx.AsyncClient, world: World) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/multi")
    number = await world.number(world.accounts["telnyx"], agents=[(agent, None, 1.0)])
    for to in (number.phone_number, number.phone_number[1:], f"sip:{number.phone_number}@sip.telnyx.com"):
        request = world.telnyx_request(
            world.accounts["telnyx"], {"CallSid": "t", "From": "2125550123", "To": to}
        )
        params = stream_params(twiml(await world.post(client, request)))
        assert params["phone_number_id"] == number.id and params["from"] == "+12125550123"
    vonage_number = await world.number(world.accounts["vonage"], agents=[(agent, None, 1.0)])
    for to in (vonage_number.phone_number[1:], vonage_number.phone_number):
        query = {"to": to, "from": "442079460123", "uuid": "u"}
        token = world.vonage_token(world.accounts["vonage"])
        response = await client.get(
            "/voice/vonage/answer?" + urlencode(query), headers={"Authorization": f"Bearer {token}"}
        )
        headers = response.json()[0]["endpoint"][0]["headers"]
        assert headers["phone_number_id"] == vonage_number.id and headers["from"] == "+442079460123"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab=&%+2B0;x é")), max_size=40))
def test_form_parser_equals_parse_qsl(body: str) -> None:
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("%=&+\\xXuUN{}08AaFfg9é€\x00\n ")), max_size=60))
def test_form_parser_equals_parse_qsl_on_escapes(body: str) -> None:
    """Escapes of every kind (malformed, truncated UTF-8, a backslash before them, NUL, text
    that is not ASCII): the codec path of ``_unquote_plus`` reads them as ``unquote`` does."""
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=8))
def test_form_parser_reads_back_what_urlencode_writes(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs)
    assert (
        parse_form(body)
        == parse_qsl(body, keep_blank_values=True)
        == [(name, value) for name, value in pairs]
    )


def test_form_parser_on_twilios_full_request() -> None:
    from bench.routing import twilio_extras

    params = {"AccountSid": "AC" + "0" * 32, "To": "+14155550100", "From": "+12125550123"}
    params.update(twilio_extras(params["To"], params["From"]))
    body = urlencode(params)
    assert "CallToken=%7B%22parentCallInfoToken%22" in body
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True) == list(params.items())


def test_form_parser_on_a_carrier_body() -> None:
    body = urlencode(
        {
            "To": "+14155550100",
            "From": "sip:+1 212@h;a=b",
            "Empty": "",
            "CallSid": "CA1",
            "FromCity": "SAN FRANCISCO",  # Twilio's: spaces as '+', no escape
            "CallerName": "A+B C",
        }
    )
    assert "FromCity=SAN+FRANCISCO" in body
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)


async def test_oversized_bodies_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/voice/twilio",
        content=b"To=%2B14155550100&Pad=" + b"x" * (70 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
    )
    assert response.status_code == 403 and response.content == b""


def test_the_served_app_offers_the_protocol_its_direct_answers(live_server) -> None:  # type: ignore[no-untyped-def]
    """What makes the "served" runs above take the direct path (``kernel.serving.HttpProtocol``)."""
    from numberplane.kernel.serving import direct_of
    from numberplane.routing.fastpath import DirectAnswer

    found = direct_of(live_server.config.app)
    assert isinstance(found, DirectAnswer)
    taken = {("POST", "/voice/twilio"), ("GET", "/voice/vonage/answer"), ("GET", "/v1/route")}
    assert taken <= found.endpoints
