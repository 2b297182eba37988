"""Merging observations: order-independent, idempotent, safe with concurrent writers."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest
from sqlalchemy import func, select, text

from numberplane.calls.models import Call
from numberplane.calls.recorder import Recorder
from numberplane.calls.service import DecisionFacts, Observation, merge, new_row, status_of, write_batch
from numberplane.kernel.db import Database, utcnow
from numberplane.kernel.outbox import OutboxEvent
from tests.support import OrgCreds, listen

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def obs(status: str | None, seconds: int, duration: int | None = None, decided: bool = False) -> Observation:
    facts = (
        DecisionFacts(outcome="agent_sip", reason="agent", trace=lambda: [{"step": "x"}]) if decided else None
    )
    return Observation(
        org_id="o",
        carrier="twilio",
        carrier_call_id="c",
        at=T0 + dt.timedelta(seconds=seconds),
        status=status,
        duration_s=duration,
        decision=facts,
    )


def test_any_order_gives_the_same_record() -> None:
    seen = []
    parts = [
        obs("ringing", 0, decided=True),
        obs("in_progress", 2),
        obs("completed", 32, duration=30),
        obs("ringing", 40),
    ]
    for order in itertools.permutations(parts):
        row = new_row(order[0])
        finished = [merge(row, o) for o in order]
        assert finished.count(True) == 1  # call.completed exactly once
        seen.append({k: v for k, v in row.items() if k not in ("id", "created_at", "updated_at")})
    first = seen[0]
    assert all(s == first for s in seen)
    assert first["status"] == "completed" and first["duration_s"] == 30
    assert first["started_at"] == T0 and first["ended_at"] == T0 + dt.timedelta(seconds=32)
    assert first["answered_at"] == T0 + dt.timedelta(seconds=2)
    assert first["outcome"] == "agent_sip" and first["trace"] == [{"step": "x"}]


def test_carrier_status_words() -> None:
    assert [
        status_of(s) for s in ("queued", "in-progress", "no-answer", "cancelled", "answered", "machine")
    ] == [
        "ringing",
        "in_progress",
        "no_answer",
        "canceled",
        "in_progress",
        None,
    ]


async def test_concurrent_writers_make_one_call(db: Database, org: OrgCreds) -> None:
    def one(status: str) -> list[Observation]:
        return [
            Observation(
                org_id=org.org_id, carrier="api", carrier_call_id="race-1", at=utcnow(), status=status
            )
        ]

    statuses = ["ringing", "completed", "in_progress", "busy", "ringing", "completed"]
    await listen(db, org.org_id, ["call.started", "call.completed"])
    await asyncio.gather(*(write_batch(db=db, observations=one(s)) for s in statuses))
    async with db.session() as session:
        rows = list(await session.scalars(select(Call).where(Call.carrier_call_id == "race-1")))
        assert len(rows) == 1
        assert rows[0].status in ("completed", "busy")
        events = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.subject_id == rows[0].id)
        )
    assert events == 2  # call.started and one call.completed


async def test_the_recorder_queue_is_bounded(db: Database, org: OrgCreds) -> None:
    recorder = Recorder(db, batch=2, max_queue=3)
    for i in range(5):
        recorder.add(
            Observation(
                org_id=org.org_id, carrier="api", carrier_call_id=f"bounded-{i}", at=utcnow(), status="busy"
            )
        )
    assert len(recorder) == 3 and recorder.dropped == 2
    assert await recorder.flush() == 3 and len(recorder) == 0
    async with db.session() as session:
        ids = set(
            await session.scalars(select(Call.carrier_call_id).where(Call.carrier_call_id.like("bounded-%")))
        )
    assert ids == {"bounded-0", "bounded-1", "bounded-2"}


async def test_a_batch_keeps_its_planner_setting_to_itself(db: Database, org: OrgCreds) -> None:
    """On PostgreSQL a call batch turns sequential scans off for its own transaction (its lookup
    by call id must not keep a sequential-scan plan made while a partition was small); the
    connection goes back to the pool with the server's setting, for every other statement."""
    if db.dialect != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    single = Database(db.url, pool_size=1, max_overflow=0)
    try:
        async with single.session() as session:
            before = await session.scalar(text("SHOW enable_seqscan"))
        for i in range(8):  # past the five executions after which a generic plan may be kept
            batch = [
                Observation(org_id=org.org_id, carrier="api", carrier_call_id=f"plan-{i}-{n}", status="busy")
                for n in range(3)
            ]
            assert await write_batch(db=single, observations=batch) == 3
        async with single.session() as session:
            assert await session.scalar(text("SHOW enable_seqscan")) == before == "on"
            written = await session.scalar(
                select(func.count()).select_from(Call).where(Call.carrier_call_id.like("plan-%"))
            )
        assert written == 24
    finally:
        await single.engine.dispose()
