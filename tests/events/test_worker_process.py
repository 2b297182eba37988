"""``numberplane worker`` as real processes: killed mid-delivery, and two at once on PostgreSQL."""

from __future__ import annotations

import json
from collections import defaultdict

import httpx
import pytest

from numberplane.kernel.db import Database
from numberplane.kernel.ids import new_id
from tests.events.conftest import (
    Receiver,
    WorkerProcess,
    all_settled,
    create_endpoint,
    deliveries,
    emit_events,
)
from tests.support import OrgCreds, wait_for


async def test_worker_killed_mid_delivery_loses_nothing(
    db: Database,
    db_url: str,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    endpoint = await create_endpoint(client, org, receiver.url("crash"), cleanup_endpoints)
    subjects = [new_id(), new_id()]
    emitted = await emit_events(db, org.org_id, subjects, per_subject=3)
    receiver.hold = True  # the receiver sits on every request it gets

    first = WorkerProcess(db_url)
    try:
        await wait_for(lambda: receiver.holding > 0, timeout=30)
        first.kill()  # SIGKILL while a delivery is in flight
    finally:
        if first.proc.poll() is None:
            first.kill()
    assert first.proc.returncode == -9
    held = _inflight_ids(receiver)
    assert held
    receiver.hold = False
    rows = await deliveries(db, endpoint["id"])
    assert any(r.lease_token for r in rows)  # the dead worker's lease is still on the row
    assert not all(r.status == "succeeded" for r in rows)

    second = WorkerProcess(db_url)
    try:
        await wait_for(lambda: all_settled(db, endpoint["id"], len(emitted)), timeout=60, interval=0.1)
    finally:
        code = second.terminate()
    assert code == 0, second.output()  # SIGTERM: a clean stop

    ok_ids = receiver.ids("/crash")
    assert {e for _, e in emitted} <= ok_ids  # nothing lost
    for event_id in held:  # the interrupted ones were sent again after the restart
        assert len([r for r in receiver.received if r.webhook_id == event_id]) >= 2
    rows = await deliveries(db, endpoint["id"])
    assert all(r.lease_token is None for r in rows)
    assert max(r.attempts for r in rows) >= 2


def _inflight_ids(receiver: Receiver) -> set[str]:
    with receiver._lock:
        return {key[1] for key, n in receiver._inflight.items() if n > 0}


async def test_two_workers_never_deliver_one_event_concurrently(
    db: Database,
    db_url: str,
    backend: str,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    if backend != "postgresql":
        pytest.skip("several workers at once is the PostgreSQL deployment")
    receiver.delay = (0.0, 0.02)
    receiver.fail_every = 4  # retries, so the same webhook-id comes round again and again
    a = await create_endpoint(client, org, receiver.url("a"), cleanup_endpoints)
    b = await create_endpoint(client, org, receiver.url("b"), cleanup_endpoints)
    subjects = [new_id() for _ in range(5)]
    emitted = await emit_events(db, org.org_id, subjects, per_subject=8)

    workers = [WorkerProcess(db_url, "--batch-size", "4") for _ in range(2)]
    try:
        for endpoint in (a, b):
            await wait_for(
                lambda e=endpoint: all_settled(db, e["id"], len(emitted)), timeout=90, interval=0.1
            )
    finally:
        codes = [w.terminate() for w in workers]
    assert codes == [0, 0]

    assert receiver.overlaps == []  # never two requests for one (endpoint, webhook-id) at once
    for path in ("/a", "/b"):
        assert receiver.ids(path) == {e for _, e in emitted}
        # In order per subject: each event first succeeded only after the previous one had.
        arrivals: dict[str, list[str]] = defaultdict(list)
        for r in sorted(receiver.ok(path), key=lambda r: r.started):
            subject = json.loads(r.body)["subject"]["id"]
            if r.webhook_id not in arrivals[subject]:
                arrivals[subject].append(r.webhook_id)
        for subject in subjects:
            assert arrivals[subject] == [e for s, e in emitted if s == subject]
    retried = [r for r in receiver.received if r.status == 500]
    assert retried  # the test did exercise retries


async def test_postgresql_workers_wake_on_notify_not_just_polling(
    db: Database,
    db_url: str,
    backend: str,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    endpoint = await create_endpoint(client, org, receiver.url("notify"), cleanup_endpoints)
    sleepy = WorkerProcess(db_url, env={"NUMBERPLANE_WORKER_POLL_SECONDS": "600"})
    try:
        first = await emit_events(db, org.org_id, [new_id()], 1)
        await wait_for(lambda: receiver.ids("/notify") == {first[0][1]}, timeout=60)
        # The worker is idle now, with a ten-minute poll: only the NOTIFY can wake it.
        second = await emit_events(db, org.org_id, [new_id()], 1)
        await wait_for(lambda: second[0][1] in receiver.ids("/notify"), timeout=60)
        # The receiver has it before the worker records the outcome: wait for that too.
        await wait_for(lambda: all_settled(db, endpoint["id"], 2), timeout=30)
    finally:
        assert sleepy.terminate() == 0
