"""A batch's direct paths: an opening decision's record and the events' payloads, built without
the general merge, are what the merge and ``json.dumps`` give."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import select

from numberplane.calls.models import Call
from numberplane.calls.service import (
    COLUMNS,
    DecisionFacts,
    Observation,
    event_data,
    event_json,
    merge,
    new_row,
    opening,
    write_batch,
)
from numberplane.kernel.db import Database, RawJSON, utcnow
from numberplane.kernel.ids import new_id, new_ids
from numberplane.kernel.outbox import OutboxEvent, redact
from tests.support import OrgCreds, listen

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def decision(call_id: str, org_id: str = "o", at: dt.datetime = T0, **extra: object) -> Observation:
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
        at=at,
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


async def test_one_batch_mixing_every_path(db: Database, org: OrgCreds) -> None:
    """New calls by their decision alone (direct), by decision and status (merged), a status
    for a written call and a decision for a call a status created first (both updates)."""
    now = utcnow()  # recent: retention's tests prune every old call
    await listen(db, org.org_id)

    def status(call_id: str, status: str, seconds: int = 0) -> Observation:
        return Observation(
            org_id=org.org_id,
            carrier="twilio",
            carrier_call_id=call_id,
            at=now + dt.timedelta(seconds=seconds),
            status=status,
        )

    await write_batch(db=db, observations=[decision("mix-c", org.org_id, now), status("mix-d", "ringing")])
    batch = [
        decision("mix-a", org.org_id, now),
        decision("mix-b", org.org_id, now),
        status("mix-c", "completed", 5),
        status("mix-b", "in_progress", 1),
        decision("mix-d", org.org_id, now),
        status("mix-b", "completed", 9),
    ]
    assert await write_batch(db=db, observations=batch) == 4
    async with db.session() as session:
        calls = {
            c.carrier_call_id: c
            for c in await session.scalars(select(Call).where(Call.carrier_call_id.like("mix-%")))
        }
        events = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.subject_id.in_([c.id for c in calls.values()]))
                .order_by(OutboxEvent.id)
            )
        )
    assert {k: (c.status, c.outcome) for k, c in calls.items()} == {
        "mix-a": ("ringing", "agent_sip"),
        "mix-b": ("completed", "agent_sip"),
        "mix-c": ("completed", "agent_sip"),
        "mix-d": ("ringing", "agent_sip"),
    }
    assert calls["mix-d"].trace == [{"step": "x"}] and calls["mix-a"].webhook == {"asked": False}
    by_call: dict[str | None, str] = {c.id: k for k, c in calls.items()}
    assert [(by_call[e.subject_id], e.type) for e in events] == [
        ("mix-c", "call.started"),
        ("mix-d", "call.started"),
        ("mix-a", "call.started"),  # the second batch's new calls in arrival order
        ("mix-b", "call.started"),
        ("mix-c", "call.completed"),  # then the calls it finished, in the order they finished
        ("mix-b", "call.completed"),
    ]
    assert events[3].data["status"] == "completed"  # a call's events show it as the batch left it
    assert events[2].data == event_data(
        {c.name: getattr(calls["mix-a"], c.name) for c in Call.__table__.columns}
    )


def test_ids_made_together_are_ids_made_one_by_one() -> None:
    before, together, after = new_id(), new_ids(5000), new_id()  # 5,000: past one ms's 4,096
    made = [before, *together, after]
    assert made == sorted(made) and len(set(made)) == len(made) and new_ids(0) == []
    for value in made:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


async def call_events(db: Database, prefix: str) -> list[tuple[str | None, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Call.carrier_call_id, OutboxEvent.type)
            .join(OutboxEvent, OutboxEvent.subject_id == Call.id)
            .where(Call.carrier_call_id.like(prefix + "%"))
            .order_by(OutboxEvent.id)
        )
        return [(call_id, kind) for call_id, kind in rows]


async def test_call_events_only_for_orgs_that_listen(
    db: Database, org: OrgCreds, other_org: OrgCreds
) -> None:
    """No endpoint, a disabled one, or one for other types: the calls are recorded, their events
    are not written. Another org's endpoint never makes this org's events."""
    now = utcnow()

    def finished(call_id: str, org_id: str) -> list[Observation]:
        done = Observation(
            org_id=org_id, carrier="twilio", carrier_call_id=call_id, at=now, status="completed"
        )
        return [decision(call_id, org_id, now), done]

    await listen(db, other_org.org_id)
    await listen(db, org.org_id, enabled=False)
    await listen(db, org.org_id, ["phone_number.updated"])
    assert await write_batch(db=db, observations=finished("lis-none", org.org_id)) == 1
    assert await call_events(db, "lis-none") == []
    await listen(db, org.org_id, ["call.completed"])
    await write_batch(db=db, observations=finished("lis-done", org.org_id))
    assert await call_events(db, "lis-done") == [("lis-done", "call.completed")]
    await listen(db, org.org_id, ["call.started", "agent.created"])
    await write_batch(db=db, observations=finished("lis-both", org.org_id))
    assert await call_events(db, "lis-both") == [("lis-both", "call.started"), ("lis-both", "call.completed")]
    async with db.session() as session:
        written = await session.scalar(select(Call.status).where(Call.carrier_call_id == "lis-none"))
    assert written == "completed"
