"""Writing call records through the writer process, and the direct paths of a batch."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from numberplane.calls.models import Call
from numberplane.calls.recorder import Recorder
from numberplane.calls.service import (
    COLUMNS,
    DecisionFacts,
    Observation,
    event_data,
    event_json,
    merge,
    new_row,
    opening,
)
from numberplane.calls.writer import flatten, unflatten
from numberplane.kernel.db import Database, RawJSON, as_utc, utcnow
from numberplane.kernel.outbox import OutboxEvent, redact
from tests.support import OrgCreds

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def decision(call_id: str, org_id: str = "o", **extra: object) -> Observation:
    facts = DecisionFacts(
        outcome="agent_sip",
        reason="agent",
        agent_id="a1",
        agent_version=3,
        webhook=RawJSON('{"asked":false}'),
        decision_ms=0.25,
        trace=lambda: [{"step": "x"}],
    )
    return Observation(
        org_id=org_id,
        carrier="twilio",
        carrier_call_id=call_id,
        at=T0,
        phone_number_id="n1",
        phone_number="+14155550100",
        from_number='+1 "quoted" \u00e9',
        status="ringing",
        decision=facts,
        **extra,  # type: ignore[arg-type]
    )


def test_columns_are_the_table_and_new_rows() -> None:
    assert set(COLUMNS) == {c.name for c in Call.__table__.columns}
    assert tuple(new_row(decision("c"))) == COLUMNS


def test_an_opening_record_is_the_merged_row() -> None:
    obs = decision("c", sip_code=200)
    row = new_row(obs)
    merge(row, obs)
    record = opening(obs, obs.decision)  # type: ignore[arg-type]
    merged = dict(zip(COLUMNS, record, strict=True))
    assert merged["webhook"] == '{"asked":false}' and json.loads(merged["trace"]) == [{"step": "x"}]
    for name in COLUMNS:
        if name not in ("id", "webhook", "trace"):
            assert merged[name] == row[name], name


def test_event_json_is_json_dumps_of_event_data() -> None:
    row = new_row(decision("c"))
    merge(row, decision("c"))
    rows = [row, {**row, "status": "completed", "ended_at": T0, "duration_s": 7, "agent_version": None}]
    rows.append({**row, "started_at": T0.replace(tzinfo=None), "phone_number": None, "agent_version": True})
    for r in rows:
        data = event_data(r)
        assert redact(data) == data  # nothing to redact: emit_encoded may skip it
        expected = json.dumps(data, separators=(",", ":"), default=str)
        assert event_json(tuple(r[c] for c in COLUMNS)) == expected


def test_an_observation_crosses_the_pipe_whole() -> None:
    obs = decision("c", sip_code=486, duration_s=3)
    back = unflatten(flatten(obs))
    assert back.decision is not None and back.decision.trace == [{"step": "x"}]
    assert back.decision.webhook == '{"asked":false}'
    assert (back.key, back.at, back.from_number, back.sip_code, back.duration_s) == (
        obs.key,
        obs.at,
        obs.from_number,
        486,
        3,
    )


async def test_the_writer_process_writes_and_a_dead_one_is_replaced_in_process(
    db: Database, org: OrgCreds
) -> None:
    recorder = Recorder(db, process=True, interval=60)
    recorder.start()
    try:
        await recorder._start_writer()  # what the background task does first
        assert recorder._writer is not None and recorder._writer.alive
        for i in range(3):
            recorder.add(decision(f"writer-{i}", org_id=org.org_id))
        recorder.add(
            Observation(org_id=org.org_id, carrier="twilio", carrier_call_id="writer-0", status="busy")
        )
        assert await recorder.flush() == 3
        proc = recorder._writer._proc
        assert proc is not None
        proc.kill()
        await proc.wait()
        recorder.add(decision("writer-3", org_id=org.org_id))
        assert await recorder.flush() == 1  # written in-process instead
        assert recorder._writer is None and recorder.failed == 0
    finally:
        await recorder.aclose()
    async with db.session() as session:
        calls = {
            c.carrier_call_id: c
            for c in await session.scalars(select(Call).where(Call.carrier_call_id.like("writer-%")))
        }
        assert sorted(calls) == ["writer-0", "writer-1", "writer-2", "writer-3"]
        assert calls["writer-0"].status == "busy" and calls["writer-0"].outcome == "agent_sip"
        assert calls["writer-1"].trace == [{"step": "x"}] and calls["writer-1"].webhook == {"asked": False}
        events = list(
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.subject_id.in_([c.id for c in calls.values()]))
            )
        )
    assert sorted(e.type for e in events) == ["call.completed"] + ["call.started"] * 4
    started = next(e for e in events if e.subject_id == calls["writer-1"].id)
    assert started.data["from"] == '+1 "quoted" \u00e9' and started.data["status"] == "ringing"
    assert started.org_id == org.org_id and as_utc(started.created_at) <= utcnow()  # type: ignore[operator]
