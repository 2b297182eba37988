"""The billing clock, the retry schedule, and the worker inside ``numberplane serve``."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from numberplane.app import create_app
from numberplane.events.worker import (
    Worker,
    WorkerConfig,
    add_month,
    backoff,
    retry_schedule,
)
from numberplane.kernel.db import Database, as_utc
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import OutboxEvent
from numberplane.kernel.settings import Settings
from numberplane.numbers.models import PhoneNumber
from tests.events.conftest import (
    FAST,
    FAST_ENV,
    Receiver,
    all_settled,
    create_endpoint,
    emit_events,
    numberplane_bin,
)
from tests.support import LiveServer, OrgCreds, wait_for


def test_retry_schedule_is_exponential_capped_and_about_a_day() -> None:
    config = WorkerConfig()
    delays = retry_schedule(config)
    assert delays[:4] == [10, 20, 40, 80]
    assert max(delays) == config.retry_max_delay
    assert 20 * 3600 <= sum(delays) <= 24 * 3600
    for attempts in (1, 5, 30):
        for r in (0.0, 0.5, 0.999):
            nominal = min(config.retry_max_delay, config.retry_base * 2 ** (attempts - 1))
            assert 0.75 * nominal <= backoff(attempts, config, rand=lambda r=r: r) < 1.25 * nominal
    with pytest.raises(ValueError, match="lease"):
        WorkerConfig(timeout=10, lease=5)


def test_add_month_keeps_the_billing_day() -> None:
    utc = dt.UTC
    assert add_month(dt.datetime(2025, 1, 31, 9, tzinfo=utc), 31) == dt.datetime(2025, 2, 28, 9, tzinfo=utc)
    assert add_month(dt.datetime(2025, 2, 28, 9, tzinfo=utc), 31) == dt.datetime(2025, 3, 31, 9, tzinfo=utc)
    assert add_month(dt.datetime(2024, 1, 30, tzinfo=utc), 30) == dt.datetime(2024, 2, 29, tzinfo=utc)
    assert add_month(dt.datetime(2025, 12, 15, tzinfo=utc), 15) == dt.datetime(2026, 1, 15, tzinfo=utc)


async def _renewals(db: Database, number_id: str) -> list[OutboxEvent]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.subject_id == number_id, OutboxEvent.type == "phone_number.renewed")
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_billing_clock_rolls_forward_monthly_and_stops_at_release(
    db: Database, client: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    bought = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    assert bought.status_code == 201, bought.text
    number = bought.json()
    first_bill = dt.datetime.fromisoformat(number["next_billed_at"])
    assert first_bill > dt.datetime.now(dt.UTC)

    now = [first_bill - dt.timedelta(seconds=1)]
    worker = Worker(db, FAST, clock=lambda: now[0])
    try:
        assert await worker.renew_due(org_id=org.org_id) == 0  # not due yet
        now[0] = first_bill + dt.timedelta(days=40)  # two billing dates have passed
        assert await worker.renew_due(org_id=org.org_id) == 2
        assert await worker.renew_due(org_id=org.org_id) == 0  # nothing twice
    finally:
        await worker.aclose()

    events = await _renewals(db, number["id"])
    assert len(events) == 2
    periods = [(e.data["period_start"], e.data["period_end"]) for e in events]
    assert dt.datetime.fromisoformat(periods[0][0]) == first_bill
    assert periods[0][1] == periods[1][0]
    third = add_month(add_month(first_bill, first_bill.day), first_bill.day)
    assert dt.datetime.fromisoformat(periods[1][1]) == third
    assert all(e.org_id == org.org_id and e.data["phone_number"] == number["phone_number"] for e in events)
    got = (await client.get(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)).json()
    assert dt.datetime.fromisoformat(got["next_billed_at"]) == third
    trail = (
        await client.get(
            "/v1/audit-events",
            params={"target_id": number["id"], "action": "phone_number.renewed"},
            headers=org.bearer,
        )
    ).json()["data"]
    assert [(a["actor_type"], a["via"]) for a in trail] == [("system", "system")]

    released = await client.delete(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)
    assert released.json()["status"] == "released"
    later = Worker(db, FAST, clock=lambda: third + dt.timedelta(days=400))
    try:
        assert await later.renew_due(org_id=org.org_id) == 0  # a released number stops
    finally:
        await later.aclose()
    assert len(await _renewals(db, number["id"])) == 2


async def test_billing_skips_imported_and_inactive_numbers(db: Database, org: OrgCreds) -> None:
    past = dt.datetime(2020, 1, 15, tzinfo=dt.UTC)
    rows = [
        PhoneNumber(
            id=new_id(), org_id=org.org_id, phone_number=f"+1415555{n:04d}", status=status, origin=origin
        )
        for n, (status, origin) in enumerate(
            [("active", "imported"), ("failed", "purchased"), ("releasing", "purchased")]
        )
    ]
    async with db.session() as session:
        for row in rows:
            row.next_billed_at = past
            session.add(row)
        await session.commit()
    worker = Worker(db, FAST, clock=lambda: dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
    try:
        assert await worker.renew_due(org_id=org.org_id) == 0
    finally:
        await worker.aclose()
    async with db.session() as session:
        for row in rows:
            fresh = await session.get(PhoneNumber, row.id)
            assert fresh is not None and as_utc(fresh.next_billed_at) == past


async def test_serve_runs_the_worker_in_process_with_sqlite(
    db: Database,
    db_url: str,
    backend: str,
    settings: Settings,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    endpoint = await create_endpoint(client, org, receiver.url("inproc"), cleanup_endpoints)
    serve_settings = settings.model_copy(
        update={
            "run_worker_in_process": True,
            "worker_poll_seconds": 0.05,
            "webhook_retry_base_seconds": 0.05,
        }
    )
    own_db = Database(db_url)
    app = create_app(settings=serve_settings, db=own_db)
    server = LiveServer(app).start()
    try:
        running = getattr(app.state, "events_worker", None)
        if backend == "postgresql":
            assert running is None  # PostgreSQL deployments run `numberplane worker`
            return
        assert running is not None
        [(_, event_id)] = await emit_events(db, org.org_id, [new_id()], 1)
        await wait_for(lambda: all_settled(db, endpoint["id"], 1), timeout=30)
        [hit] = receiver.ok("/inproc")
        assert Webhook(endpoint["secret"]).verify(hit.body, hit.headers)["id"] == event_id
    finally:
        server.stop()
        await own_db.dispose()
    assert not server.thread.is_alive()  # shut down cleanly, worker and all
    assert getattr(app.state, "events_worker", None) is None


def test_worker_command_is_registered() -> None:
    out = subprocess.run(
        [numberplane_bin(), "worker", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--once" in out.stdout


async def test_worker_once_delivers_what_is_due(
    db: Database,
    db_url: str,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    endpoint = await create_endpoint(client, org, receiver.url("once"), cleanup_endpoints)
    emitted = await emit_events(db, org.org_id, [new_id()], 3)
    env = {**os.environ, **FAST_ENV, "NUMBERPLANE_DATABASE_URL": db_url}
    done = subprocess.run(  # noqa: ASYNC221
        [numberplane_bin(), "worker", "--once"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert await all_settled(db, endpoint["id"], 3)
    assert receiver.ids("/once") == {e for _, e in emitted}
