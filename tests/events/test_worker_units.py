"""The retry schedule, and the worker inside ``numberplane serve``."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from standardwebhooks import Webhook

from numberplane.app import create_app
from numberplane.events.worker import (
    WorkerConfig,
    backoff,
    retry_schedule,
)
from numberplane.kernel.db import Database
from numberplane.kernel.ids import new_id
from numberplane.kernel.settings import Settings
from tests.events.conftest import (
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
