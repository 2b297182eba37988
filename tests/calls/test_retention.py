"""Retention: expired calls, delivered events, finished deliveries and audit rows are deleted in
bounded batches; everything else stays."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text

from numberplane.app import periodic_jobs
from numberplane.calls import partitions
from numberplane.calls.models import Call
from numberplane.calls.retention import prune_calls, retain_calls
from numberplane.calls.service import Observation, write_batch
from numberplane.events.models import WebhookDelivery, WebhookEndpoint
from numberplane.events.retention import id_before, prune_events
from numberplane.kernel.crypto import encrypt
from numberplane.kernel.db import Database, utcnow
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import AuditEvent, OutboxEvent
from numberplane.kernel.settings import Settings
from tests.support import OrgCreds


def old_id(moment: dt.datetime, n: int) -> str:
    """A UUIDv7-shaped id from ``moment`` (distinct per ``n``)."""
    return id_before(moment)[:-12] + f"{n:012x}"


async def count(db: Database, model: type, *where: object) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_calls_past_retention_go_in_bounded_batches(db: Database, org: OrgCreds) -> None:
    now = utcnow()
    observations = [
        Observation(
            org_id=org.org_id, carrier="api", carrier_call_id=f"ret-old-{i}", at=now - dt.timedelta(days=120)
        )
        for i in range(5)
    ]
    observations.append(
        Observation(
            org_id=org.org_id, carrier="api", carrier_call_id="ret-new", at=now - dt.timedelta(days=89)
        )
    )
    await write_batch(db=db, observations=observations)
    mine = Call.org_id == org.org_id
    assert await count(db, Call, mine) == 6
    assert await prune_calls(db=db, days=0) == 0  # 0: keep forever
    # Two batches of two per run: a run stops at its bound, the next one goes on.
    assert await prune_calls(db=db, days=90, batch=2, max_batches=2) == 4
    assert await prune_calls(db=db, days=90, batch=2, max_batches=2) == 1
    assert await prune_calls(db=db, days=90, batch=2, max_batches=2) == 0
    async with db.session() as session:
        left = list(await session.scalars(select(Call.carrier_call_id).where(mine)))
    assert left == ["ret-new"]


async def test_delivered_events_finished_deliveries_and_audit_rows(db: Database, org: OrgCreds) -> None:
    now = utcnow()
    old = now - dt.timedelta(days=100)
    endpoint = WebhookEndpoint(
        id=new_id(),
        org_id=org.org_id,
        url="https://hooks.example.com/x",
        event_types=[],
        secret_enc=encrypt("whsec_x"),
    )

    def event(n: int, at: dt.datetime, fanned: bool) -> OutboxEvent:
        return OutboxEvent(
            id=old_id(at, n),
            org_id=org.org_id,
            type="call.started",
            subject_type="call",
            subject_id=f"retention-{n}",
            data={},
            created_at=at,
            fanned_out_at=at if fanned else None,
        )

    delivered = event(1, old, True)  # old, fanned out, its delivery succeeded: goes
    waiting = event(2, old, True)  # old, but a delivery is still pending: stays
    unfanned = event(3, old, False)  # old, never fanned out: stays
    recent = event(4, now - dt.timedelta(days=1), True)  # recent: stays

    def delivery(n: int, ev: OutboxEvent, status: str) -> WebhookDelivery:
        return WebhookDelivery(
            id=old_id(ev.created_at, 100 + n),
            org_id=org.org_id,
            endpoint_id=endpoint.id,
            event_id=ev.id,
            event_type=ev.type,
            status=status,
        )

    audits = [
        AuditEvent(
            id=old_id(at, 200 + n),
            org_id=org.org_id,
            actor_type="system",
            via="system",
            action="retention.test",
            target_type="call",
            target_id=f"retention-{n}",
            created_at=at,
        )
        for n, at in enumerate((old, now))
    ]
    async with db.session() as session:
        session.add(endpoint)
        session.add_all([delivered, waiting, unfanned, recent])
        await session.flush()
        session.add_all(
            [
                delivery(1, delivered, "succeeded"),
                delivery(2, waiting, "pending"),
                delivery(3, recent, "failed"),
            ]
        )
        session.add_all(audits)
        await session.commit()

    assert await prune_events(db=db, event_days=0, delivery_days=0, audit_days=0) == {
        "deliveries": 0,
        "events": 0,
        "audit_events": 0,
    }
    pruned = await prune_events(db=db, event_days=90, delivery_days=90, audit_days=90)
    assert pruned == {"deliveries": 1, "events": 1, "audit_events": 1}
    subjects = OutboxEvent.subject_id.like("retention-%")
    async with db.session() as session:
        kept = set(await session.scalars(select(OutboxEvent.subject_id).where(subjects)))
        statuses = set(
            await session.scalars(
                select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id == endpoint.id)
            )
        )
        audit_left = list(
            await session.scalars(select(AuditEvent.target_id).where(AuditEvent.action == "retention.test"))
        )
    assert kept == {"retention-2", "retention-3", "retention-4"}
    assert statuses == {"pending", "failed"}
    assert audit_left == ["retention-1"]


async def test_the_worker_runs_retention(db: Database, settings: Settings) -> None:
    jobs = {job.name: job for job in periodic_jobs(db, settings)}
    assert jobs["retention"].every == settings.retention_check_seconds
    summary = await jobs["retention"].run()
    assert summary.startswith("pruned: ") and "call(s) deleted" in summary and "audit_events" in summary


async def test_postgresql_partitions_by_month(db: Database, org: OrgCreds, backend: str) -> None:
    """PostgreSQL: next month's partition is made ahead; a month wholly past retention is dropped."""
    if backend != "postgresql":
        pytest.skip("monthly partitions are PostgreSQL's; SQLite deletes in batches (tested above)")
    long_ago = dt.datetime(2020, 1, 15, tzinfo=dt.UTC)
    assert await partitions.ensure(db, now=long_ago, ahead=0) == ["calls_p202001"]
    old = Observation(org_id=org.org_id, carrier="api", carrier_call_id="p-2020", at=long_ago)
    await write_batch(db=db, observations=[old])
    async with db.engine.connect() as conn:
        where = await conn.scalar(
            text("SELECT tableoid::regclass::text FROM calls WHERE carrier_call_id = 'p-2020'")
        )
    assert where == "calls_p202001"
    result = await retain_calls(db=db, days=90)
    assert "calls_p202001" in result.partitions_dropped
    names = await partitions.partitions(db)
    this_month = partitions.month_of(utcnow())
    assert partitions.name_of(this_month) in names
    assert partitions.name_of(partitions.next_month(this_month)) in names
    assert "calls_p202001" not in names
    assert await count(db, Call, Call.carrier_call_id == "p-2020") == 0
    # A month ahead is made once; running again makes nothing new.
    ahead = partitions.next_month(partitions.next_month(this_month))
    made = await partitions.ensure(db, now=partitions.next_month(this_month))
    assert made == [partitions.name_of(ahead)]
    assert await partitions.ensure(db, now=partitions.next_month(this_month)) == []
