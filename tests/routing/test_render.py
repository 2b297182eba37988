"""Each decision in each carrier's language, parsed back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numberplane.routing.decide import CallInfo, Decision, WebhookResult, decide
from numberplane.routing.render import render, twiml, twiml_reference
from numberplane.routing.snapshot import AgentTarget, CallHandlerView, RouteSnapshot

XML_FORMATS = ["twiml", "laml", "texml"]


def snap(**kw: object) -> RouteSnapshot:
    base: dict[str, object] = {
        "number_id": "num_1",
        "org_id": "org_1",
        "e164": "+14155550100",
        "status": "active",
        "carrier": "twilio",
        "carrier_account_id": "a",
    }
    base.update(kw)
    return RouteSnapshot(**base)  # type: ignore[arg-type]


CALL = CallInfo.parse(to="+14155550100", caller="+12125550123", call_id="CA1", carrier="twilio")
STREAM = AgentTarget("ag_1", 4, 1.0, stream_url="wss://agents.example.com/stream?x=1&y=2")
SIP = AgentTarget("ag_2", 2, 1.0, sip_uri="sip:bot@sip.example.com;transport=tls")


def xml(fmt: str, route: RouteSnapshot | None, result: WebhookResult | None = None) -> ET.Element:
    body, media_type = render(decide(route, CALL, result), fmt)
    assert media_type == "application/xml"
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return root


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_not_in_service_says_then_hangs_up(fmt: str) -> None:
    root = xml(fmt, None)
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert "not in service" in (root[0].text or "")


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_language_of_the_number_is_used(fmt: str) -> None:
    root = xml(fmt, snap(status="released", language="en-GB"))
    assert root[0].get("language") == "en-GB"


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_reject(fmt: str) -> None:
    root = xml(fmt, snap(allowed_inbound_countries=("GB",)))
    assert [c.tag for c in root] == ["Reject"]


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_forward_dials_the_number(fmt: str) -> None:
    root = xml(fmt, snap(outbound=True, callback_forwarding_number="+14155550199"))
    assert root[0].tag == "Dial" and root[0].text == "+14155550199"


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_redirect_to_the_customers_url(fmt: str) -> None:
    handler = CallHandlerView(
        type="laml_webhooks", request_url="https://c.example.com/x?a=1&b=2", request_method="GET"
    )
    root = xml(fmt, snap(call_handler=handler))
    assert root[0].tag == "Redirect"
    assert root[0].text == "https://c.example.com/x?a=1&b=2"
    assert root[0].get("method") == "GET"


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_stream_with_parameters(fmt: str) -> None:
    result = WebhookResult(status="answered", dynamic_variables={"name": "Ada <&>"})
    root = xml(fmt, snap(agents=(STREAM,), inbound_webhook_url="https://h.example.com"), result)
    connect = root[0]
    assert connect.tag == "Connect"
    stream = connect[0]
    assert stream.tag == "Stream" and stream.get("url") == "wss://agents.example.com/stream?x=1&y=2"
    params = {p.get("name"): p.get("value") for p in stream if p.tag == "Parameter"}
    assert params["agent_id"] == "ag_1"
    assert params["agent_version"] == "4"
    assert params["call_id"] == "CA1"
    assert params["phone_number_id"] == "num_1"
    assert json.loads(params["dynamic_variables"] or "") == {"name": "Ada <&>"}


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_sip_dial_carries_ids_as_headers(fmt: str) -> None:
    root = xml(fmt, snap(agents=(SIP,)))
    dial = root[0]
    assert dial.tag == "Dial" and dial[0].tag == "Sip"
    uri = dial[0].text or ""
    assert uri.startswith("sip:bot@sip.example.com;transport=tls?")
    headers = parse_qs(urlsplit(uri.replace("sip:", "sip://", 1)).query)
    assert headers["X-Numberplane-Agent-Id"] == ["ag_2"]
    assert headers["X-Numberplane-Agent-Version"] == ["2"]
    assert headers["X-Numberplane-Call-Id"] == ["CA1"]
    assert headers["X-Numberplane-Number-Id"] == ["num_1"]


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_fallback_sip_has_no_agent_headers(fmt: str) -> None:
    root = xml(fmt, snap(fallback_sip_uri="sip:desk@pbx.example.com"))
    assert root[0][0].text == "sip:desk@pbx.example.com"


def ncco(route: RouteSnapshot | None) -> list[dict[str, object]]:
    call = CallInfo.parse(to="14155550100", caller="12125550123", call_id="uuid-1", carrier="vonage")
    body, media_type = render(decide(route, call), "ncco")
    assert media_type == "application/json"
    out = json.loads(body)
    assert isinstance(out, list)
    return out


def test_ncco_not_in_service_talks() -> None:
    assert ncco(None) == [
        {"action": "talk", "text": "The number you have called is not in service. Goodbye."}
    ]


def test_ncco_reject_is_empty() -> None:
    assert ncco(snap(allowed_inbound_countries=("GB",))) == []


def test_ncco_forward_to_phone_without_plus() -> None:
    [connect] = ncco(snap(outbound=True, callback_forwarding_number="+14155550199"))
    assert connect == {
        "action": "connect",
        "from": "14155550100",
        "endpoint": [{"type": "phone", "number": "14155550199"}],
    }


def test_ncco_stream_is_a_websocket_with_headers() -> None:
    [connect] = ncco(snap(agents=(STREAM,)))
    [endpoint] = connect["endpoint"]  # type: ignore[misc]
    assert endpoint["type"] == "websocket"
    assert endpoint["uri"] == "wss://agents.example.com/stream?x=1&y=2"
    assert endpoint["content-type"] == "audio/l16;rate=16000"
    assert endpoint["headers"]["agent_id"] == "ag_1"
    assert endpoint["headers"]["call_id"] == "uuid-1"


def test_ncco_sip() -> None:
    [connect] = ncco(snap(agents=(SIP,)))
    [endpoint] = connect["endpoint"]  # type: ignore[misc]
    assert endpoint["type"] == "sip" and endpoint["uri"] == "sip:bot@sip.example.com;transport=tls"
    assert endpoint["headers"]["X-Numberplane-Agent-Id"] == "ag_2"


def test_json_is_the_decision() -> None:
    body, media_type = render(decide(snap(agents=(SIP,)), CALL), "json")
    assert media_type == "application/json"
    decision = json.loads(body)["decision"]
    assert decision["outcome"] == "agent_sip" and decision["agent_id"] == "ag_2"


def test_unknown_format() -> None:
    with pytest.raises(ValueError):
        render(decide(None, CALL), "yaml")


# -- The direct TwiML writer is byte-for-byte twilio's VoiceResponse -----------------------------------

# Characters XML 1.0 cannot carry (not even escaped): VoiceResponse writes them as they are, so
# the equality holds for "normal" text, everything else; the writer then differs on purpose (below).
NOT_XML = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
text = st.text(st.characters(codec="utf-8", exclude_characters=NOT_XML), max_size=40)
ACTION_OUTCOMES = [
    "not_in_service",
    "rejected",
    "forwarded",
    "redirected",
    "agent_stream",
    "agent_sip",
    "fallback_number",
    "fallback_sip",
]


@settings(max_examples=500, deadline=None)
@given(
    outcome=st.sampled_from(ACTION_OUTCOMES),
    message=text,
    language=st.sampled_from([None, "en", "en-GB", 'x-"<&>']),
    target=text,
    method=st.sampled_from(["GET", "POST"]),
    params=st.lists(st.tuples(text, text), max_size=6),
)
def test_twiml_writer_equals_voice_response(
    outcome: str, message: str, language: str | None, target: str, method: str, params: list[tuple[str, str]]
) -> None:
    decision = Decision(
        outcome=outcome,
        reason="r",
        message=message,
        language=language,
        dial_number=target,
        sip_uri="sip:" + target,
        redirect_url=target,
        redirect_method=method,
        stream_url="wss://" + target,
        parameters=tuple(params),
    )
    assert twiml(decision) == twiml_reference(decision)


@settings(max_examples=300, deadline=None)
@given(
    url=text,
    shape=st.lists(st.tuples(text, text), min_size=6, max_size=6),
    calls=st.lists(st.tuples(text, text, text, text), min_size=1, max_size=4),
)
def test_twiml_of_six_parameters_equals_voice_response_call_after_call(
    url: str, shape: list[tuple[str, str]], calls: list[tuple[str, str, str, str]]
) -> None:
    """Six parameters (``stream_parameters``' shape) are written from pieces kept per shape, the
    3rd to 6th values put in per call: every call of one shape, the first and those after it,
    with escapes or without, is still what VoiceResponse writes."""
    for values in calls:
        pairs = tuple(shape[:2]) + tuple(
            (name, value) for (name, _), value in zip(shape[2:], values, strict=True)
        )
        decision = Decision(
            outcome="agent_stream", reason="agent", stream_url="wss://" + url, parameters=pairs
        )
        assert twiml(decision) == twiml_reference(decision)


def test_twiml_writer_on_real_decisions() -> None:
    for case in CASES_FOR_EQUALITY:
        decision = decide(*case)
        assert twiml(decision) == twiml_reference(decision)


CASES_FOR_EQUALITY = [
    (None, CALL),
    (snap(status="released", language="en-GB"), CALL),
    (snap(allowed_inbound_countries=("GB",)), CALL),
    (snap(outbound=True, callback_forwarding_number="+14155550199"), CALL),
    (
        snap(
            call_handler=CallHandlerView(type="laml_webhooks", request_url="https://c.example.com/x?a=1&b=2")
        ),
        CALL,
    ),
    (
        snap(agents=(STREAM,), inbound_webhook_url="https://h"),
        CALL,
        WebhookResult("answered", None, {"a": "<&>"}),
    ),
    (snap(agents=(SIP,)), CALL),
    (snap(fallback_sip_uri="sip:desk@pbx.example.com"), CALL),
]


# -- Whatever reaches TwiML/LaML/TeXML is well-formed (issue 10, item 5) --------------------------------

# Any text at all: control characters, lone surrogates, U+FFFE, markup.
anything = st.text(max_size=40) | st.sampled_from(
    ["sip:caller\x01@example.com", "CA\x01", "\ud800", "\uffff"]
)


def parses(body: bytes, fmt: str) -> None:
    """Every renderer output parses with a standard parser: XML for the TwiML family, JSON else."""
    if fmt in XML_FORMATS:
        root = ET.fromstring(body)
        assert root.tag == "Response"
    else:
        json.loads(body)


@settings(max_examples=250, deadline=None)
@given(
    outcome=st.sampled_from(ACTION_OUTCOMES),
    message=anything,
    language=st.one_of(st.none(), anything),
    target=anything,
    params=st.lists(st.tuples(anything, anything), max_size=6),
    fmt=st.sampled_from(["twiml", "laml", "texml", "ncco", "json"]),
)
def test_every_rendered_answer_parses(
    outcome: str, message: str, language: str | None, target: str, params: list[tuple[str, str]], fmt: str
) -> None:
    decision = Decision(
        outcome=outcome,
        reason="r",
        message=message,
        language=language,
        dial_number=target,
        sip_uri="sip:" + target,
        redirect_url=target,
        redirect_method="POST",
        stream_url="wss://" + target,
        parameters=tuple(params),
        to="+14155550100",
    )
    body, _ = render(decision, fmt)
    parses(body, fmt)


@settings(max_examples=150, deadline=None)
@given(
    caller=anything, call_id=anything, stream=anything, variable=anything, fmt=st.sampled_from(XML_FORMATS)
)
def test_hostile_call_fields_and_agent_urls_still_parse(
    caller: str, call_id: str, stream: str, variable: str, fmt: str
) -> None:
    """The values a carrier or a stored agent supplies, through the real decision."""
    call = CallInfo.parse(to="+14155550100", caller=caller, call_id=call_id, carrier="twilio")
    agent = AgentTarget("ag_1", 1, 1.0, stream_url="wss://agents.example.com/" + stream)
    result = WebhookResult("answered", None, {variable: variable})
    route = snap(agents=(agent,), inbound_webhook_url="https://h.example.com")
    for decision in (decide(route, call, result), decide(snap(agents=(SIP,)), call), decide(None, call)):
        parses(render(decision, fmt)[0], fmt)


def test_the_reported_control_characters() -> None:
    call = CallInfo.parse(
        to="+14155550100", caller="sip:caller\x01@example.com", call_id="CA\x01", carrier="twilio"
    )
    agent = AgentTarget("ag_1", 1, 1.0, stream_url="wss://agents.example.com/\u0001s")
    decision = decide(snap(agents=(agent,)), call)
    assert "\x01" in twiml_reference(decision)  # what VoiceResponse writes: no parser accepts it
    with pytest.raises(ET.ParseError):
        ET.fromstring(twiml_reference(decision).encode())
    stream = ET.fromstring(twiml(decision).encode())[0][0]
    params = {p.get("name"): p.get("value") for p in stream}
    assert stream.get("url") == "wss://agents.example.com/\ufffds"
    assert params["call_id"] == "CA\ufffd" and params["from"] == "sip:caller\ufffd@example.com"
