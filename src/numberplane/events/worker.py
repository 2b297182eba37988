"""The background worker: fans outbox events out to webhook endpoints, delivers them with
Standard Webhooks signatures, retries with backoff, and runs the periodic jobs its process was
given (the billing clock, retention: ``PeriodicJob``; the assembler chooses them).

Steps, each a short transaction and each bounded by ``batch_size``:

* **fan out**: take outbox events not yet fanned out (oldest first), create one pending
  delivery per matching enabled endpoint of the event's org, and mark the events. On PostgreSQL
  one worker at a time fans out (a transaction-scoped advisory lock), so deliveries for one
  subject are created in event order; on SQLite the single writer does the same.
* **claim**: lease due deliveries (``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)``
  on PostgreSQL; the same statement is atomic under SQLite's write lock). A delivery whose
  subject has an earlier pending delivery at the same endpoint is not due yet: events for one
  number reach an endpoint in order.
* **deliver**: POST through ``net.customer_request`` within ``timeout`` (shorter than the lease,
  so a lease never runs out while its holder is still sending), then record the outcome, only
  if the lease is still ours. A worker that dies mid-delivery leaves a lease that runs out; the
  delivery is then attempted again (at least once; receivers de-duplicate on webhook-id).
* **jobs**: each ``PeriodicJob`` runs when its interval has passed (one failure is logged and
  retried at the next interval; it never stops deliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from numberplane.events.models import WebhookDelivery, WebhookEndpoint
from numberplane.events.signing import body_for, sign_headers
from numberplane.kernel import changes, crypto
from numberplane.kernel.db import Actor, Database, as_utc, utcnow
from numberplane.kernel.ids import new_id
from numberplane.kernel.net import BlockedURL, CustomerClient, customer_request
from numberplane.kernel.outbox import OutboxEvent
from numberplane.kernel.settings import Settings

log = logging.getLogger("numberplane.worker")

# pg_try_advisory_xact_lock key for the fan-out step ("NP" + 1).
FANOUT_LOCK_KEY = 0x4E50_0001
# Events fanned out per step, in batches: cheap rows, so more than the deliveries per step.
FANOUT_FACTOR = 10
ERROR_MAX = 500

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class WorkerConfig:
    timeout: float = 10.0
    retry_base: float = 10.0
    retry_max_delay: float = 7200.0
    retry_window: float = 86400.0
    poll: float = 1.0
    batch_size: int = 100
    lease: float = 60.0
    allow_private: bool = False

    def __post_init__(self) -> None:
        if self.lease < self.timeout + 1:
            raise ValueError(
                "worker_lease_seconds must exceed webhook_timeout_seconds by at least a second "
                f"(lease {self.lease}s, timeout {self.timeout}s)"
            )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerConfig:
        values: dict[str, Any] = {
            "timeout": settings.webhook_timeout_seconds,
            "retry_base": settings.webhook_retry_base_seconds,
            "retry_max_delay": settings.webhook_retry_max_delay_seconds,
            "retry_window": settings.webhook_retry_window_seconds,
            "poll": settings.worker_poll_seconds,
            "batch_size": settings.worker_batch_size,
            "lease": settings.worker_lease_seconds,
            "allow_private": settings.allow_private_urls,
        }
        values.update(overrides)
        return cls(**values)


def backoff(attempts: int, config: WorkerConfig, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base·2^(n-1), capped,
    times a jitter factor in [0.75, 1.25)."""
    raw = min(config.retry_max_delay, config.retry_base * 2 ** min(max(attempts - 1, 0), 40))
    return raw * (0.75 + 0.5 * rand())


def retry_schedule(config: WorkerConfig) -> list[float]:
    """The nominal delays (no jitter) before each retry, until the retry window closes."""
    delays: list[float] = []
    total, n = 0.0, 1
    while True:
        delay = min(config.retry_max_delay, config.retry_base * 2 ** min(n - 1, 40))
        if total + delay > config.retry_window:
            return delays
        delays.append(delay)
        total += delay
        n += 1


@dataclass
class WorkerStats:
    """What a worker did since it started (``numberplane worker --once`` prints it)."""

    fanned_out: int = 0  # events turned into deliveries
    delivered: int = 0
    retrying: int = 0  # attempts that failed and will be tried again
    failed: int = 0  # deliveries given up (retry window closed, or a permanent refusal)
    lease_lost: int = 0  # outcomes not recorded: another worker owned the delivery by then

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass(frozen=True)
class PeriodicJob:
    """Work a worker runs every ``every`` seconds (the first run right after it starts)."""

    name: str
    every: float
    run: Callable[[], Awaitable[Any]]


@dataclass
class Claimed:
    delivery_id: str
    token: str
    endpoint_id: str
    url: str
    secret: str
    event_id: str
    body: str
    attempts: int
    retry_until: dt.datetime
    leased_until: dt.datetime


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False


class Worker:
    """One worker. Run several (processes or hosts) against PostgreSQL; they share the work."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        *,
        clock: Clock = utcnow,
        client: httpx.AsyncClient | None = None,
        jobs: tuple[PeriodicJob, ...] | list[PeriodicJob] = (),
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.jobs = tuple(jobs)
        self._client = client
        self._owns_client = client is None
        self._pg = db.dialect == "postgresql"
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._next_run: dict[str, float] = {}
        self.stats = WorkerStats()
        # Fan out when woken (a commit emitted events), when the poll interval has passed, or
        # while the last fan-out was full; not after every finished delivery.
        self._fan_due = True
        self._last_fan = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = CustomerClient(
                allow_private=self.config.allow_private,
                headers={"accept": "*/*"},
                limits=httpx.Limits(max_connections=max(10, self.config.batch_size)),
            )
        return self._client

    def start(self) -> asyncio.Task[None]:
        """Run in the background on the current event loop (``serve`` with SQLite, tests)."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="numberplane-worker")
        return self._task

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        """Stop and wait: deliveries in flight finish (bounded by the timeout), then return."""
        self.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=self.config.timeout + 5)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._close_client()

    async def _close_client(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self) -> None:
        """Loop until ``stop()``: fan out, renew, claim and deliver; sleep when there is nothing."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        wake = self._wake = asyncio.Event()

        def on_outbox(_ids: list[str]) -> None:  # called by whichever thread committed
            if not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)

        self.db.feed.subscribe(changes.OUTBOX, on_outbox)
        log.info("worker started (%s)", self.db.dialect)
        try:
            while not self._stopping.is_set():
                try:
                    busy = await self._step()
                except Exception:
                    log.exception("worker step failed; retrying after the poll interval")
                    busy = False
                if busy and not self._stopping.is_set():
                    continue
                await self._idle()
        finally:
            self.db.feed.unsubscribe(changes.OUTBOX, on_outbox)
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=self.config.timeout + 2)
                for task in self._inflight:
                    task.cancel()
            if self._task is None:
                await self._close_client()
            log.info("worker stopped")

    async def _idle(self) -> None:
        assert self._wake is not None
        waits: set[asyncio.Future[Any]] = set(self._inflight)
        waker = asyncio.ensure_future(self._wake.wait())
        waits.add(waker)
        try:
            done, _ = await asyncio.wait(waits, timeout=self.config.poll, return_when=asyncio.FIRST_COMPLETED)
            if not done or self._wake.is_set():
                self._fan_due = True
        finally:
            waker.cancel()
            self._wake.clear()

    async def _step(self) -> bool:
        fanned = 0
        if self._fan_due or time.monotonic() - self._last_fan >= self.config.poll:
            self._last_fan = time.monotonic()
            fanned = await self.fan_out()
            self._fan_due = fanned >= self.config.batch_size * FANOUT_FACTOR
        await self.run_due_jobs()
        free = self.config.batch_size - len(self._inflight)
        claimed = await self.claim(free) if free > 0 else []
        for item in claimed:
            task = asyncio.ensure_future(self.deliver(item))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return bool(fanned or claimed)

    async def run_due_jobs(self, *, force: bool = False) -> dict[str, Any]:
        """Run every job whose interval has passed (all of them with ``force``). Returns what
        each returned, or the error it raised, by name."""
        results: dict[str, Any] = {}
        for job in self.jobs:
            now = time.monotonic()
            if not force and now < self._next_run.get(job.name, 0.0):
                continue
            self._next_run[job.name] = now + job.every
            try:
                results[job.name] = await job.run()
            except Exception as exc:
                log.exception("periodic job %s failed; retrying in %.0f s", job.name, job.every)
                results[job.name] = exc
        return results

    async def run_until_idle(self, max_steps: int = 1000) -> WorkerStats:
        """Fan out and deliver until nothing is due (tests, ``numberplane worker --once``)."""
        for _ in range(max_steps):
            fanned = await self.fan_out()
            claimed = await self.claim()
            if claimed:
                await asyncio.gather(*(self.deliver(c) for c in claimed))
            if not fanned and not claimed:
                break
        return self.stats

    async def waiting(self) -> dict[str, Any]:
        """Deliveries still pending after a run: how many, and when the next one is due."""
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(
                        WebhookDelivery.status == "pending"
                    )
                )
            ).one()
        next_at = as_utc(row[1])
        return {"pending": int(row[0] or 0), "next_attempt_at": next_at.isoformat() if next_at else None}

    # -- fan out -----------------------------------------------------------------------------

    async def fan_out(self, limit: int | None = None) -> int:
        """Create deliveries for up to ``limit`` new events (default: ten batches' worth, as fanning
        out is cheap and an import can add many thousands at once); returns how many were taken."""
        limit = limit or self.config.batch_size * FANOUT_FACTOR
        now = self.clock()
        rows: list[dict[str, Any]] = []
        async with self.db.uow(Actor.system()) as uow:
            session = uow.session
            if self._pg:
                got = await session.scalar(select(func.pg_try_advisory_xact_lock(FANOUT_LOCK_KEY)))
                if not got:
                    await session.rollback()
                    return 0
            new_ids = (
                select(OutboxEvent.id)
                .where(OutboxEvent.fanned_out_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(limit)
                .scalar_subquery()
            )
            result = await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(new_ids))
                .values(fanned_out_at=now)
                .returning(
                    OutboxEvent.id,
                    OutboxEvent.org_id,
                    OutboxEvent.type,
                    OutboxEvent.subject_type,
                    OutboxEvent.subject_id,
                )
                .execution_options(synchronize_session=False)
            )
            events = sorted(result.all(), key=lambda r: r.id)
            orgs = sorted({e.org_id for e in events if e.org_id})
            by_org: dict[str, list[Any]] = defaultdict(list)
            if orgs:
                endpoints = await session.execute(
                    select(WebhookEndpoint.id, WebhookEndpoint.org_id, WebhookEndpoint.event_types).where(
                        WebhookEndpoint.org_id.in_(orgs), WebhookEndpoint.enabled.is_(True)
                    )
                )
                for ep in endpoints:
                    by_org[ep.org_id].append(ep)
            retry_until = now + dt.timedelta(seconds=self.config.retry_window)
            for ev in events:
                for ep in by_org.get(ev.org_id, ()):
                    if ep.event_types and ev.type not in ep.event_types:
                        continue
                    rows.append(
                        {
                            "id": new_id(),
                            "org_id": ev.org_id,
                            "endpoint_id": ep.id,
                            "event_id": ev.id,
                            "event_type": ev.type,
                            "subject_key": f"{ev.subject_type}:{ev.subject_id}" if ev.subject_id else None,
                            "status": "pending",
                            "replay": False,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "retry_until": retry_until,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            if rows:
                await session.execute(insert(WebhookDelivery), rows)
            await uow.commit()
        if events:
            self.stats.fanned_out += len(events)
            log.debug("fanned out %d events into %d deliveries", len(events), len(rows))
        return len(events)

    # -- claim and deliver -------------------------------------------------------------------

    async def claim(self, limit: int | None = None) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries for this worker."""
        limit = limit or self.config.batch_size
        now = self.clock()
        token = new_id()
        until = now + dt.timedelta(seconds=self.config.lease)
        cand = aliased(WebhookDelivery, name="cand")
        earlier = aliased(WebhookDelivery, name="earlier")
        blocked = exists().where(
            earlier.endpoint_id == cand.endpoint_id,
            earlier.subject_key == cand.subject_key,
            earlier.status == "pending",
            earlier.replay.is_(False),
            earlier.event_id < cand.event_id,
        )
        due = (
            select(cand.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == cand.endpoint_id)
            .where(
                cand.status == "pending",
                cand.next_attempt_at <= now,
                or_(cand.leased_until.is_(None), cand.leased_until <= now),
                WebhookEndpoint.enabled.is_(True),
                ~blocked,
            )
            .order_by(cand.next_attempt_at, cand.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=cand)
            .scalar_subquery()
        )
        async with self.db.uow(Actor.system()) as uow:
            session = uow.session
            result = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(due))
                .values(
                    lease_token=token,
                    leased_until=until,
                    attempts=WebhookDelivery.attempts + 1,
                    last_attempt_at=now,
                    updated_at=now,
                )
                .returning(WebhookDelivery.id)
                .execution_options(synchronize_session=False)
            )
            ids = [r[0] for r in result]
            if not ids:
                await uow.commit()
                return []
            loaded = await session.execute(
                select(WebhookDelivery, WebhookEndpoint, OutboxEvent)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id.in_(ids))
            )
            out: list[Claimed] = []
            for d, ep, ev in loaded:
                try:
                    secret = crypto.decrypt(ep.secret_enc)
                except crypto.SecretKeyError:
                    # The configured key is not the one the secret was stored with: an operator
                    # problem, not the receiver's. Leave the lease to run out; retried later.
                    log.error("endpoint %s: signing secret cannot be decrypted; check the key", ep.id)
                    continue
                out.append(
                    Claimed(
                        delivery_id=d.id,
                        token=token,
                        endpoint_id=ep.id,
                        url=ep.url,
                        secret=secret,
                        event_id=ev.id,
                        body=body_for(ev),
                        attempts=d.attempts,
                        retry_until=as_utc(d.retry_until) or now,
                        leased_until=until,
                    )
                )
            await uow.commit()
        out.sort(key=lambda c: c.event_id)
        return out

    def _budget(self, item: Claimed) -> float:
        """Seconds this attempt may take: the timeout, but always ending a second before the
        lease does (a slow claim eats into the lease), so nobody else can be sending meanwhile."""
        left = (item.leased_until - self.clock()).total_seconds() - 1.0
        return min(self.config.timeout, left)

    async def send(self, item: Claimed) -> Outcome:
        """One attempt. Never raises for the receiver's faults: they become the outcome."""
        headers = sign_headers(item.secret, item.event_id, item.body)
        budget = self._budget(item)
        try:
            async with asyncio.timeout(budget):
                response = await customer_request(
                    self.client,
                    "POST",
                    item.url,
                    allow_private=self.config.allow_private,
                    timeout=self.config.timeout,
                    content=item.body.encode(),
                    headers=headers,
                )
        except BlockedURL as exc:
            if exc.__cause__ is not None:  # the name did not resolve: maybe later
                return Outcome(ok=False, error=str(exc)[:ERROR_MAX])
            return Outcome(ok=False, error=f"blocked: {exc}"[:ERROR_MAX], permanent=True)
        except TimeoutError:
            return Outcome(ok=False, error=f"timed out after {budget:.3g}s")
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX])
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(ok=True, status_code=code)
        return Outcome(ok=False, status_code=code, error=f"HTTP {code}")

    async def deliver(self, item: Claimed) -> None:
        if self._budget(item) <= 0:
            log.warning("delivery %s: lease nearly gone before sending; left for later", item.delivery_id)
            return
        started = time.monotonic()
        try:
            outcome = await self.send(item)
            await self.record(item, outcome, int((time.monotonic() - started) * 1000))
        except asyncio.CancelledError:
            raise
        except Exception:
            # The outcome could not be recorded (database unreachable...): the lease runs out and
            # the delivery is attempted again. At least once.
            log.exception("delivery %s: could not record the outcome", item.delivery_id)

    async def record(self, item: Claimed, outcome: Outcome, duration_ms: int) -> None:
        """Write the attempt's outcome, unless our lease was lost (then someone else owns it)."""
        now = self.clock()
        values: dict[str, Any] = {
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
            "last_duration_ms": duration_ms,
            "lease_token": None,
            "leased_until": None,
            "updated_at": now,
        }
        if outcome.ok:
            values.update(status="succeeded", delivered_at=now)
        else:
            retry_at = now + dt.timedelta(seconds=backoff(item.attempts, self.config))
            if outcome.permanent or retry_at > item.retry_until:
                values["status"] = "failed"
            else:
                values["next_attempt_at"] = retry_at
        async with self.db.uow(Actor.system()) as uow:
            session = uow.session
            result = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == item.delivery_id, WebhookDelivery.lease_token == item.token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
        if getattr(result, "rowcount", 1) == 0:
            self.stats.lease_lost += 1
            log.warning("delivery %s: lease lost before the outcome was recorded", item.delivery_id)
            return
        if outcome.ok:
            self.stats.delivered += 1
        elif values.get("status") == "failed":
            self.stats.failed += 1
        else:
            self.stats.retrying += 1
        if not outcome.ok:
            log.info(
                "delivery %s to endpoint %s failed (attempt %d): %s%s",
                item.delivery_id,
                item.endpoint_id,
                item.attempts,
                outcome.error,
                "; giving up" if values.get("status") == "failed" else "",
            )
