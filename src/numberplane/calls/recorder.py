"""Write-behind for call records: the data plane answers first, the record follows.

Routing hands each decision to ``Recorder.add_row`` as a tuple of plain values
(``writer.decided_row``; a status callback's observation goes through ``add`` and
``writer.row_of``). Nothing on the answer's path waits for the database: a background task
writes what has gathered every ``interval`` seconds, or sooner once ``batch`` are waiting, one
unit of work per batch (``service.write_batch``). A crash loses at most what was not yet
written; the carriers' status callbacks repair what they can (a callback for an unknown call
creates it). The queue is bounded: past ``max_queue`` new observations are dropped and counted
rather than growing the process without limit.

Where a batch is written: by the server's writer process (``calls.writer``, the default), so
the process that answers carriers spends its CPU on answers; in this process while that child
cannot be had (it is restarted at most every few seconds), and always with ``writer=None``.

``app.py`` creates one per process and starts and stops it in its lifespan; ``flush`` writes
everything now (test calls, shutdown, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from numberplane.calls.service import Observation, write_batch
from numberplane.calls.writer import BatchRefused, Row, WriterProcess, WriterUnavailable, observations, row_of
from numberplane.kernel.db import Database

log = logging.getLogger("numberplane.calls")

DRAIN_S = 20.0  # the most a stopping server spends writing what is queued


class Recorder:
    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.5,
        batch: int = 500,
        max_queue: int = 200_000,
        gap: float = 0.2,
        writer: WriterProcess | None = None,
    ) -> None:
        self.db = db
        self.writer = writer
        self.interval = interval
        self.gap = min(gap, interval)  # a record waits at most ~interval either way
        self.batch = batch
        self.max_queue = max_queue
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._queue: list[Row] = []
        self._inflight = 0  # taken from the queue, not yet written
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0

    def __len__(self) -> int:
        """Observations waiting, including the batch being written."""
        return len(self._queue) + self._inflight

    def add(self, obs: Observation) -> None:
        """Queue ``obs`` for the next batch. Never blocks, never raises."""
        try:
            row = row_of(obs)
        except Exception:  # building its trace failed: the call is answered, its record is not
            self.lost(obs.carrier_call_id)
            return
        self.add_row(row)

    def lost(self, call_id: str | None) -> None:
        """A call whose record could not be built (its trace failed): counted and logged; the
        answer it was built for is not touched."""
        self.failed += 1
        log.exception("could not record call %s", call_id)

    def add_row(self, row: Row) -> None:
        """Queue a row (``writer.row_of``, ``writer.decided_row``). Never blocks, never raises."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 60:
                self._last_drop_log = now
                log.warning(
                    "call recorder queue full (%d); %d observation(s) dropped", len(queue), self.dropped
                )
            return
        queue.append(row)
        if len(queue) >= self.batch and self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="numberplane-call-recorder")

    async def aclose(self, *, drain_s: float = DRAIN_S) -> None:
        """Stop the background task and write what is left: for at most ``drain_s``, and only
        while the database takes it. A server stopping with a full queue and its database gone
        once went on failing batch after batch for minutes (200,000 records, 500 a batch, each
        retried), long after its supervisor had given up on it; what is not written then is
        counted as dropped and logged once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake = None
        try:
            await asyncio.wait_for(self.flush(stop_at_failure=True), drain_s)
        except TimeoutError:
            log.error("call records: shutdown drain ran out of time (%.0f s)", drain_s)
        if self._queue:
            self.dropped += len(self._queue)
            log.error("call records: %d observation(s) not written at shutdown", len(self._queue))
            self._queue.clear()
        if self.writer is not None:
            await self.writer.aclose()

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        if self.writer is not None:
            try:  # ready before the first batch; if it cannot be, batches are written here
                await self.writer.start()
            except WriterUnavailable as exc:
                log.warning("%s; writing call records in this process", exc)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.interval)
            wake.clear()
            try:
                await self.flush(gap=self.gap)
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; the next interval tries the rest
                log.exception("writing call records failed")

    async def flush(self, *, gap: float = 0.0, stop_at_failure: bool = False) -> int:
        """Write everything queued, a batch per unit of work, until the queue is empty; returns
        the calls written. A batch the database refuses (after ``write_batch``'s retries) is
        logged and dropped.

        Until empty, not only what was queued at the start: under steady load the writer then
        keeps going with what arrived during its last batch (natural batching: small batches
        when calls are few, up to ``batch`` when they are many). Writing only what was queued at
        the start, in batches of 500 every half second, made the p99 at 1,000 calls/s worse
        (bench/routing.py, A/B: warm 3.0-4.0 -> 5.9 ms, cold 7.8-9.0 -> 11-13.5 ms): each large
        batch is a burst of database work on the machine's cores.

        ``gap`` (the background writer's): after a batch shorter than ``batch``, wait that long
        before the next, so what arrives meanwhile goes in one unit of work. A unit of work has a
        fixed cost whatever its size (five statements and a commit: ~0.7 ms of the writing
        process's CPU, and PostgreSQL's own) against ~10-25 us a call. At 1,000 calls/s a 20 ms
        gap made batches of ~25 calls, and the fixed cost was most of it; 200 ms makes ~200.
        bench: /voice/twilio cold at 1,000 calls/s, 1,000,000 numbers, PostgreSQL, 3 rounds
        interleaved: the writer process's CPU 97-123 -> 36-39 us a call, PostgreSQL's backends
        244-299 -> 225-244 us a call (the routing query's included); p99 4.1-6.6 against
        5.4-6.3 ms (no difference this machine can show). Under heavy load the batches are full
        (``batch``) and follow each other with no gap, as before.

        ``stop_at_failure`` (shutdown's): after a batch the database refused, leave the rest
        queued rather than try each in turn."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        written = 0
        async with self._lock:
            while self._queue:
                batch = self._queue[: self.batch]
                del self._queue[: self.batch]
                self._inflight = len(batch)
                try:
                    written += await self._write(batch)
                except BatchRefused as exc:
                    self.failed += len(batch)
                    log.error("dropped a batch of %d call observation(s): %s", len(batch), exc)
                    if stop_at_failure:
                        break
                except Exception:
                    self.failed += len(batch)
                    log.exception("dropped a batch of %d call observation(s)", len(batch))
                    if stop_at_failure:
                        break
                finally:
                    self._inflight = 0
                if gap and self._queue and len(batch) < self.batch:
                    await asyncio.sleep(gap)
        self.written += written
        return written

    async def _write(self, batch: Sequence[Row]) -> int:
        writer = self.writer
        if writer is not None and writer.available():
            try:
                return await writer.write(batch)
            except WriterUnavailable as exc:
                # Written again here: if the child wrote it before it left, the merge finds
                # the calls and changes nothing (no second call.started either).
                log.warning("%s; writing this batch of %d in this process", exc, len(batch))
        return await write_batch(db=self.db, observations=observations(batch))
