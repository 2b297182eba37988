"""Every carrier endpoint leaves a call record; status callbacks move it forward, never back."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from numberplane.kernel.db import Database
from numberplane.kernel.outbox import OutboxEvent
from tests.routing.world import World
from tests.support import OrgCreds, listen

CALLER = "+12125550123"
Flush = Callable[[], Coroutine[Any, Any, int]]


async def only_call(client: httpx.AsyncClient, org: OrgCreds, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/calls", params=params, headers=org.bearer)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 1, data
    return dict(data[0])


async def events_for(db: Database, call_id: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.subject_id == call_id).order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_twilio_call_recorded_then_completed(
    client: httpx.AsyncClient, world: World, org: OrgCreds, db: Database, flush: Flush
) -> None:
    await listen(db, org.org_id)
    account = world.accounts["twilio"]
    agent = await world.agent(stream_url="wss://agents.example.com/a", versions=2)
    number = await world.number(account, agents=[(agent, None, 1.0)])
    call = {"CallSid": "CA-rec-1", "From": CALLER, "To": number.phone_number}
    answer = await world.post(client, world.twilio_request(account, call))
    assert answer.status_code == 200 and b"<Stream" in answer.content
    await flush()
    record = await only_call(client, org, phone_number=number.phone_number)
    assert record["object"] == "call"
    assert record["carrier"] == "twilio" and record["carrier_call_id"] == "CA-rec-1"
    assert record["phone_number_id"] == number.id and record["phone_number"] == number.phone_number
    assert record["from"] == CALLER and record["direction"] == "inbound"
    assert record["status"] == "ringing"
    assert (record["outcome"], record["reason"]) == ("agent_stream", "agent")
    assert (record["agent_id"], record["agent_version"]) == (agent, 2)
    assert record["webhook"] == {
        "asked": False,
        "status": "not_configured",
        "latency_ms": None,
        "overrode_agent": False,
        "error": None,
    }
    assert record["decision_ms"] > 0 and record["decision_ms"] == round(record["decision_ms"], 3)  # to the us
    assert [s["step"] for s in record["trace"]] == ["number", "country", "webhook", "agent"]
    assert record["trace"][0]["result"] == "active"
    assert "only connectable agent" in record["trace"][-1]["detail"]
    assert record["answered_at"] is None and record["ended_at"] is None

    status = world.twilio_request(
        account, {**call, "CallStatus": "completed", "CallDuration": "42"}, path="/voice/twilio/status"
    )
    assert (await world.post(client, status)).status_code == 204
    # Late and repeated callbacks: a ringing after completed, the completed again.
    late = world.twilio_request(account, {**call, "CallStatus": "ringing"}, path="/voice/twilio/status")
    assert (await world.post(client, late)).status_code == 204
    assert (await world.post(client, status)).status_code == 204
    await flush()
    done = await only_call(client, org, phone_number=number.phone_number)
    assert done["id"] == record["id"]
    assert done["status"] == "completed" and done["duration_s"] == 42
    assert done["answered_at"] is not None and done["ended_at"] is not None
    assert done["outcome"] == "agent_stream"  # the decision is kept
    # ... and its trace and webhook facts, which the updates carry back as the text they were read as
    assert done["trace"] == record["trace"] and done["webhook"] == record["webhook"]

    events = await events_for(db, record["id"])
    assert [e.type for e in events] == ["call.started", "call.completed"]
    assert events[1].org_id == org.org_id
    assert events[1].data["status"] == "completed" and events[1].data["duration_s"] == 42
    assert events[1].data["agent_id"] == agent and events[1].data["outcome"] == "agent_stream"


async def test_status_first_then_decision_merges_into_one_call(
    client: httpx.AsyncClient, world: World, org: OrgCreds, flush: Flush
) -> None:
    """Callbacks that overtake the record (or outlive a lost one) create it; the decision joins it."""
    account = world.accounts["twilio"]
    number = await world.number(account, fallback={"number": "+14155550100"})
    call = {"CallSid": "CA-ooo-1", "From": CALLER, "To": number.phone_number}
    status = world.twilio_request(
        account, {**call, "CallStatus": "no-answer", "CallDuration": "0"}, path="/voice/twilio/status"
    )
    assert (await world.post(client, status)).status_code == 204
    await flush()
    lost = await only_call(client, org, phone_number=number.phone_number)
    assert lost["status"] == "no_answer" and lost["outcome"] is None and lost["phone_number_id"] == number.id
    assert (await world.post(client, world.twilio_request(account, call))).status_code == 200
    await flush()
    merged = await only_call(client, org, phone_number=number.phone_number)
    assert merged["id"] == lost["id"]
    assert merged["status"] == "no_answer" and merged["answered_at"] is None
    assert (merged["outcome"], merged["reason"]) == ("fallback_number", "no_agent")
    assert merged["trace"][-1] == {
        "step": "fallback",
        "result": "number",
        "detail": "no agent: dialled the fallback number +14155550100",
    }


async def test_sandbox_signalwire_telnyx(
    client: httpx.AsyncClient, world: World, org: OrgCreds, flush: Flush
) -> None:
    agent = await world.agent(sip_uri="sip:bot@sip.example.com")
    cases = [
        ("sandbox", world.twilio_request, "/voice/twilio"),
        ("signalwire", world.signalwire_request, "/voice/signalwire"),
        ("telnyx", world.telnyx_request, "/voice/telnyx"),
    ]
    for carrier, sign, path in cases:
        account = world.sandbox if carrier == "sandbox" else world.accounts[carrier]
        number = await world.number(account, agents=[(agent, None, 1.0)])
        call = {"CallSid": f"{carrier}-1", "From": CALLER, "To": number.phone_number}
        assert (await world.post(client, sign(account, call, path=path))).status_code == 200
        busy = sign(account, {**call, "CallStatus": "busy"}, path=f"{path}/status")
        assert (await world.post(client, busy)).status_code == 204
        await flush()
        record = await only_call(client, org, phone_number=number.phone_number)
        assert record["carrier"] == carrier, record
        assert record["outcome"] == "agent_sip" and record["status"] == "busy"
        assert record["carrier_call_id"] == f"{carrier}-1"


async def test_vonage_answer_and_events(
    client: httpx.AsyncClient, world: World, org: OrgCreds, flush: Flush
) -> None:
    account = world.accounts["vonage"]
    agent = await world.agent(stream_url="wss://agents.example.com/v")
    number = await world.number(account, agents=[(agent, None, 1.0)])
    uuid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    call = {"to": number.phone_number.lstrip("+"), "from": CALLER.lstrip("+"), "uuid": uuid}
    for path, payload in (
        ("/voice/vonage/answer", call),
        ("/voice/vonage/event", {**call, "status": "answered"}),
        ("/voice/vonage/event", {**call, "status": "completed", "duration": "17"}),
        ("/voice/vonage/event", {**call, "status": "ringing"}),
    ):
        body = json.dumps(payload).encode()
        token = world.vonage_token(account, payload=body)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 200, (path, response.text)
    await flush()
    record = await only_call(client, org, carrier="vonage", phone_number=number.phone_number)
    assert record["carrier_call_id"] == uuid and record["outcome"] == "agent_stream"
    assert record["status"] == "completed" and record["duration_s"] == 17
    assert record["answered_at"] is not None and record["answered_at"] <= record["ended_at"]


async def test_unsigned_requests_leave_no_record(
    client: httpx.AsyncClient, world: World, org: OrgCreds, flush: Flush
) -> None:
    account = world.accounts["twilio"]
    number = await world.number(account)
    path, body, headers = world.twilio_request(account, {"CallSid": "CA-forged", "To": number.phone_number})
    headers["X-Twilio-Signature"] = "forged"
    assert (await client.post(path, content=body, headers=headers)).status_code == 403
    await flush()
    response = await client.get("/v1/calls", params={"phone_number": number.phone_number}, headers=org.bearer)
    assert response.json()["data"] == []


async def test_metrics_show_the_write_behind_queue(
    client: httpx.AsyncClient, world: World, flush: Flush
) -> None:
    account = world.accounts["twilio"]
    number = await world.number(account)
    call = {"CallSid": "CA-metrics-1", "From": CALLER, "To": number.phone_number}
    await flush()
    assert (await world.post(client, world.twilio_request(account, call))).status_code == 200
    waiting = (await client.get("/metrics")).text
    assert "numberplane_call_records_pending 1.0" in waiting
    await flush()
    assert "numberplane_call_records_pending 0.0" in (await client.get("/metrics")).text
    assert "numberplane_call_records_dropped 0.0" in waiting


async def test_a_record_that_cannot_be_built_leaves_the_answer_alone(
    client: httpx.AsyncClient,
    app: Any,
    world: World,
    org: OrgCreds,
    flush: Flush,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``recording.decided`` guards the answer: a trace that fails to build (injected here; no
    input is known to do it) costs that call its record, counted and logged, and nothing else."""
    from numberplane.routing import recording

    account = world.accounts["twilio"]
    agent = await world.agent(stream_url="wss://agents.example.com/a")
    number = await world.number(account, agents=[(agent, None, 1.0)])
    recorder = app.state.call_recorder
    failed = recorder.failed

    def broken(*args: object) -> str:
        raise RuntimeError("trace failed")

    monkeypatch.setattr(recording, "trace_of", broken)
    call = {"CallSid": "CA-unrecorded", "From": CALLER, "To": number.phone_number}
    answer = await world.post(client, world.twilio_request(account, call))
    assert answer.status_code == 200 and b"<Stream" in answer.content
    assert recorder.failed == failed + 1
    assert "could not record call CA-unrecorded" in caplog.text
    await flush()
    response = await client.get("/v1/calls", params={"phone_number": number.phone_number}, headers=org.bearer)
    assert response.status_code == 200 and response.json()["data"] == []

    monkeypatch.undo()  # the next call is recorded as usual
    call = {"CallSid": "CA-recorded", "From": CALLER, "To": number.phone_number}
    assert (await world.post(client, world.twilio_request(account, call))).status_code == 200
    await flush()
    record = await only_call(client, org, phone_number=number.phone_number)
    assert record["carrier_call_id"] == "CA-recorded" and record["trace"]
