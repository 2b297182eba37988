"""Events fixtures: a real webhook receiver on loopback, fast worker settings, event helpers."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from numberplane.events.models import WebhookDelivery, WebhookEndpoint
from numberplane.events.worker import Worker, WorkerConfig
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.outbox import emit
from tests.support import LiveServer, OrgCreds, free_port

FAST = WorkerConfig(
    timeout=2.0,
    retry_base=0.05,
    retry_max_delay=0.3,
    retry_window=120.0,
    poll=0.05,
    batch_size=50,
    lease=3.0,
    allow_private=True,
)

# The same, for worker subprocesses (read by Settings).
FAST_ENV = {
    "NUMBERPLANE_WEBHOOK_TIMEOUT_SECONDS": "2",
    "NUMBERPLANE_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    "NUMBERPLANE_WEBHOOK_RETRY_MAX_DELAY_SECONDS": "0.3",
    "NUMBERPLANE_WEBHOOK_RETRY_WINDOW_SECONDS": "120",
    "NUMBERPLANE_WORKER_POLL_SECONDS": "0.05",
    "NUMBERPLANE_WORKER_LEASE_SECONDS": "3",
    "NUMBERPLANE_BILLING_CHECK_SECONDS": "3600",
    "NUMBERPLANE_ALLOW_PRIVATE_URLS": "1",
    "NUMBERPLANE_LOG_LEVEL": "WARNING",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    started: float
    finished: float = 0.0

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that can be taken down, made to fail, hold or dawdle.

    It records every request and every time two requests for the same (path, webhook-id)
    were in flight at once (``overlaps``).
    """

    port: int = field(default_factory=free_port)
    fail_paths: set[str] = field(default_factory=set)
    fail_every: int = 0  # every n-th request answers 500 (0: never)
    delay: tuple[float, float] = (0.0, 0.0)
    hold: bool = False
    received: list[Received] = field(default_factory=list)
    overlaps: list[tuple[str, str]] = field(default_factory=list)
    _inflight: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    _server: LiveServer | None = None

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "hook") -> str:
        return f"{self.base}/{path}"

    @property
    def holding(self) -> int:
        with self._lock:
            return sum(self._inflight.values())

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        key = (path, request.headers.get("webhook-id", ""))
        record = Received(path, dict(request.headers), body, 0, time.monotonic())
        with self._lock:
            self._count += 1
            n = self._count
            self._inflight[key] += 1
            if self._inflight[key] > 1:
                self.overlaps.append(key)
        try:
            while self.hold:  # noqa: ASYNC110 (flipped from the test's thread)
                await asyncio.sleep(0.01)
            low, high = self.delay
            if high:
                await asyncio.sleep(random.uniform(low, high))
            failing = path.strip("/") in self.fail_paths or (self.fail_every and n % self.fail_every == 0)
            record.status = 500 if failing else 200
        finally:
            with self._lock:
                self._inflight[key] -= 1
                record.finished = time.monotonic()
                self.received.append(record)
        return Response(status_code=record.status)

    def start(self) -> Receiver:
        self._server = LiveServer(self.app, port=self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def ok(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 200 and (path is None or r.path == path)]

    def ids(self, path: str | None = None) -> set[str]:
        return {r.webhook_id for r in self.ok(path)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.hold = False
    rec.stop()


@pytest.fixture
async def cleanup_endpoints(db: Database) -> AsyncIterator[list[str]]:
    """Org ids whose webhook endpoints are deleted after the test (the database is shared)."""
    orgs: list[str] = []
    yield orgs
    if orgs:
        async with db.session() as session:
            await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.org_id.in_(orgs)))
            await session.commit()


@pytest.fixture
async def worker(db: Database, cleanup_endpoints: list[str]) -> AsyncIterator[Worker]:
    """A fast worker on the test's event loop, not started (call ``.start()`` or step it).
    Stopped before the test's endpoints are cleaned up."""
    w = Worker(db, FAST)
    yield w
    await w.aclose()


async def create_endpoint(
    client: httpx.AsyncClient, org: OrgCreds, url: str, cleanup: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/v1/webhook-endpoints", json={"url": url, **extra}, headers=org.bearer)
    assert response.status_code == 201, response.text
    if cleanup is not None and org.org_id not in cleanup:
        cleanup.append(org.org_id)
    return response.json()  # type: ignore[no-any-return]


async def emit_events(
    db: Database, org_id: str, subjects: list[str], per_subject: int, type: str = "phone_number.updated"
) -> list[tuple[str, str]]:
    """Emit ``per_subject`` events for each subject, interleaved, one commit each.
    Returns (subject_id, event_id) in creation order."""
    out: list[tuple[str, str]] = []
    for seq in range(per_subject):
        for subject in subjects:
            async with db.uow(Actor.system(org_id)) as uow:
                event = emit(
                    uow,
                    type=type,
                    org_id=org_id,
                    subject_type="phone_number",
                    subject_id=subject,
                    data={"id": subject, "seq": seq},
                )
                await uow.commit()
            out.append((subject, event.id))
    return out


async def deliveries(db: Database, endpoint_id: str) -> list[WebhookDelivery]:
    async with db.session() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
        )
        return list(rows)


async def all_settled(db: Database, endpoint_id: str, expected: int, status: str = "succeeded") -> bool:
    rows = await deliveries(db, endpoint_id)
    return len(rows) == expected and all(r.status == status for r in rows)


# -- worker subprocesses ---------------------------------------------------------------------


def numberplane_bin() -> str:
    candidate = Path(sys.executable).parent / "numberplane"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("numberplane")
    assert found, "the numberplane console script is not installed"
    return found


class WorkerProcess:
    """``numberplane worker`` as a real process, so tests can SIGKILL it mid-delivery."""

    def __init__(self, db_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, **FAST_ENV, "NUMBERPLANE_DATABASE_URL": db_url, **(env or {})}
        self.proc = subprocess.Popen(
            [numberplane_bin(), "worker", *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM: the worker stops cleanly (exit 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self) -> str:
        if self.proc.stdout is None or self.proc.poll() is None:
            return ""
        return self.proc.stdout.read().decode(errors="replace")
