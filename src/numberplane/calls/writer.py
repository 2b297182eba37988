"""The call-record writer process: records written beside the server, not inside it.

Writing a batch of call records (merging, encoding, COPY, the events) cost the answering
process ~30 us of CPU per call, a third of a warm answer's (bench/routing.py, an A/B with the
batches dropped unwritten): the process that answers carriers spent a quarter of its time on
its own bookkeeping. With a writer (``NUMBERPLANE_CALL_WRITER``, ``chosen``) each server starts
one child, ``python -m numberplane.calls.writer``, and hands it each batch over a pipe; the
server keeps only the pickling (~1 us a call). The child runs the same ``service.write_batch``,
so a record is the same whichever process writes it.

The protocol, both ways, is frames of ``FRAME`` (length, sequence) and a payload. The first
frame down is the configuration (JSON: the database URL, which is why it is not on the command
line, and the log level); the child answers sequence 0 when it is ready. Then each batch is
one pickled list of rows (``row_of``, ``pack``), answered with ``(written, failed)`` under its
sequence.
The child writes one batch at a time and exits at end of input: when the server closes the
pipe, and when the server dies, so a crash loses at most the batch in flight, as before.

The server side (``WriterProcess``) starts the child on first use and again after it dies
(never more than once per ``RESTART_S``); while it cannot, ``Recorder`` writes in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

from numberplane.calls.service import DecisionFacts, Observation, json_text, write_batch
from numberplane.kernel.db import Database, RawJSON, is_sqlite

log = logging.getLogger("numberplane.calls")

FRAME = struct.Struct("!IQ")  # payload length, sequence
MAX_FRAME = 256 * 1024 * 1024  # a batch of 5,000 records is a few MB; anything larger is corrupt
START_TIMEOUT_S = 30.0
ACK_TIMEOUT_S = 120.0  # write_batch's own retries end well before this
RESTART_S = 5.0


class WriterUnavailable(Exception):
    """The writer process could not take or finish a batch: write it some other way."""


class BatchRefused(Exception):
    """The writer process tried the batch and the database refused it (after its retries)."""


def usable(url: str) -> bool:
    """Whether another process can open the same database (an in-memory SQLite cannot)."""
    if not is_sqlite(url):
        return True
    return ":memory:" not in url and "mode=memory" not in url and not url.rstrip("/").endswith(":")


def chosen(setting: str, url: str, *, workers: int | None = None, cpus: int | None = None) -> bool:
    """Whether a server writes its call records through a writer process.

    ``process``: yes; ``inline``: no; ``auto``: when the server's processes leave a CPU for
    the writers (``workers`` below ``cpus``). A writer helps a server that is the busiest process
    on a machine with a core to spare; where every core already runs a server, it only adds
    pickling and a process to schedule (bench/workers.py, 2 workers on 2 cores: 17,000 -> 12,000-
    17,000 decisions/s, p99 64 -> 230-330 ms). ``workers`` defaults to uvicorn's WEB_CONCURRENCY
    (1 without it). Never for a database another process cannot open."""
    if setting == "inline" or not usable(url):
        return False
    if setting == "process":
        return True
    if workers is None:
        try:
            workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
        except ValueError:
            workers = 1
    return workers < (cpus or os.cpu_count() or 1)


# -- The queue's form and the wire's ---------------------------------------------------------------


Row = tuple[Any, ...]  # an observation as plain values (``row_of``, ``decided_row``)


def row_of(obs: Observation) -> Row:
    """``obs`` as the tuple ``Recorder`` queues: plain values, its decision's deferred parts (the
    webhook's facts, the trace) built now, in the process that holds what they are built from.

    Why queue this and not the observation: an observation keeps the call, the decision (two
    dicts) and the functions that build its trace alive until its batch is written, some eight
    objects the garbage collector tracks. Held by the thousand while a batch is written, they
    set off a young collection every ~250 calls, ~1.1 ms each (bench/routing.py, warm: 4.4-5.5 us
    a call; none at all with records off). A tuple of strings, numbers and times is untracked at
    its first collection. ``at`` goes as seconds since the epoch (``decided_row``)."""
    facts = obs.decision
    decision = None
    if facts is not None:
        decision = (
            facts.outcome,
            facts.reason,
            facts.agent_id,
            facts.agent_version,
            json_text(facts.webhook() if callable(facts.webhook) else facts.webhook),
            facts.decision_ms,
            json_text(facts.trace() if callable(facts.trace) else facts.trace),
        )
    return (
        obs.org_id,
        obs.carrier,
        obs.carrier_call_id,
        obs.at.timestamp(),
        obs.phone_number_id,
        obs.phone_number,
        obs.from_number,
        obs.carrier_account_id,
        obs.status,
        obs.duration_s,
        obs.sip_code,
        decision,
    )


def decided_row(
    org_id: str,
    carrier: str,
    carrier_call_id: str,
    at: float,
    phone_number_id: str | None,
    phone_number: str | None,
    from_number: str | None,
    carrier_account_id: str | None,
    outcome: str,
    reason: str,
    agent_id: str | None,
    agent_version: int | None,
    webhook: str | None,
    decision_ms: float,  # unrounded: ``observations`` rounds it to the microsecond
    trace: str,
) -> Row:
    """The row of a routing decision (a new call, ``ringing``), built straight from its parts:
    ``row_of`` without the ``Observation`` and ``DecisionFacts`` in between, which cost the
    answering process ~4 us a call (bench/routing.py, py-spy). ``at`` is ``time.time()``: a float
    is cheaper to take and to pickle than a datetime, and round-trips to the microsecond.
    ``webhook`` and ``trace`` are JSON text, as plain ``str`` (pickle writes a str subclass such as
    ``RawJSON`` through its reduce protocol: ~0.9 us each against ~0.2)."""
    return (
        org_id,
        carrier,
        carrier_call_id,
        at,
        phone_number_id,
        phone_number,
        from_number,
        carrier_account_id,
        "ringing",
        None,
        None,
        (outcome, reason, agent_id, agent_version, webhook, decision_ms, trace),
    )


_fromtimestamp = dt.datetime.fromtimestamp


def observations(rows: Sequence[Row]) -> list[Observation]:
    """The observations of queued rows (what ``service.write_batch`` takes): ``at`` a datetime
    again, each JSON text a ``RawJSON`` (one per distinct text object: the calls of one batch
    that share a text share its ``RawJSON``)."""
    shared: dict[int, RawJSON] = {}  # by the id of a text ``rows`` holds (alive until we return)

    def raw(text: str | None) -> RawJSON | None:
        if text is None or isinstance(text, RawJSON):
            return text
        value = shared.get(id(text))
        if value is None:
            value = shared[id(text)] = RawJSON(text)
        return value

    out = []
    for row in rows:
        org_id, carrier, call_id, at, *rest, d = row
        facts = None
        if d is not None:
            ms = None if d[5] is None else round(d[5], 3)  # decided_row leaves the rounding to here
            facts = DecisionFacts(d[0], d[1], d[2], d[3], raw(d[4]), ms, raw(d[6]))
        out.append(Observation(org_id, carrier, call_id, _fromtimestamp(at, dt.UTC), *rest, facts))  # type: ignore[arg-type, call-arg]
    return out


def pack(rows: Sequence[Row]) -> bytes:
    """A batch of rows for the pipe. Pickle writes an object that several rows hold once (a
    trace or webhook text many calls share)."""
    return pickle.dumps(list(rows), protocol=5)


def unpack(payload: bytes) -> list[Observation]:
    """The observations of a batch. The payload comes from the server that started this
    process, down its own pipe."""
    return observations(pickle.loads(payload))  # noqa: S301 - our parent's own frames, on a private pipe


# -- The server's side -----------------------------------------------------------------------------


class WriterProcess:
    """The server's handle on its writer child. One batch at a time (``Recorder`` holds its
    lock around ``write``): the next batch gathers while this one is written."""

    def __init__(self, database_url: str, *, log_level: str = "WARNING") -> None:
        self.database_url = database_url
        self.log_level = log_level
        self.restarts = 0
        self.written = 0  # calls the child has written (its answers' sum)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, int]]] = {}
        self._seq = 0
        self._next_start = 0.0
        self._starting: asyncio.Lock | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def available(self) -> bool:
        """Running, or allowed to start now (not within ``RESTART_S`` of a failed start or a death)."""
        return self.pid is not None or time.monotonic() >= self._next_start

    async def start(self) -> None:
        """Start the child and wait until it is ready; raises ``WriterUnavailable`` if it is not."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.pid is not None:
                return
            try:
                await asyncio.wait_for(self._spawn(), START_TIMEOUT_S)
            except (OSError, TimeoutError, WriterUnavailable) as exc:
                self._next_start = time.monotonic() + RESTART_S
                await self._kill()
                raise WriterUnavailable(f"the call-record writer did not start: {exc!r}") from exc

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "numberplane.calls.writer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # Its own session: a Ctrl-C at the terminal reaches the server, which then closes the
            # pipe; the child finishes its batch and leaves, instead of dying mid-batch.
            start_new_session=True,
        )
        self._proc = proc
        self._pending.clear()
        ready = asyncio.get_running_loop().create_future()
        self._pending[0] = ready
        self._reader = asyncio.create_task(self._read_acks(proc), name="numberplane-call-writer-acks")
        config = json.dumps({"database_url": self.database_url, "log_level": self.log_level}).encode()
        assert proc.stdin is not None
        proc.stdin.write(FRAME.pack(len(config), 0) + config)
        await proc.stdin.drain()
        await ready
        self.restarts += 1  # starts, in fact: the first counts
        log.info("call-record writer process %d started", proc.pid)

    async def _read_acks(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                head = await proc.stdout.readexactly(FRAME.size)
                length, seq = FRAME.unpack(head)
                if length > 4096:  # an answer is a few bytes: this is not one
                    raise ValueError(f"an answer of {length} bytes")
                body = await proc.stdout.readexactly(length)
                written, failed = json.loads(body)
                future = self._pending.pop(seq, None)
                if future is not None and not future.done():
                    future.set_result((written, failed))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            gone = WriterUnavailable(f"the call-record writer process left ({exc.__class__.__name__})")
        else:  # pragma: no cover - the loop only ends by an exception
            gone = WriterUnavailable("the call-record writer process left")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(gone)
        self._pending.clear()
        if self._proc is proc:
            self._next_start = time.monotonic() + RESTART_S
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            log.warning("call-record writer process %d left (exit %s)", proc.pid, proc.returncode)

    async def write(self, rows: Sequence[Row]) -> int:
        """Hand a batch to the child and wait until it is written; returns the calls written.

        ``WriterUnavailable``: the child could not take it or left before answering (the batch
        may or may not be written: writing it again is safe, the merge is idempotent).
        ``BatchRefused``: the child's database refused it."""
        if self.pid is None:
            await self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        payload = pack(rows)
        self._seq += 1
        seq = self._seq
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            proc.stdin.write(FRAME.pack(len(payload), seq) + payload)
            await proc.stdin.drain()
            written, failed = await asyncio.wait_for(asyncio.shield(future), ACK_TIMEOUT_S)
        except TimeoutError as exc:
            await self._kill()
            raise WriterUnavailable("the call-record writer process did not answer in time") from exc
        except (ConnectionError, RuntimeError) as exc:
            raise WriterUnavailable(f"the call-record writer process is gone: {exc!r}") from exc
        finally:
            self._pending.pop(seq, None)
        if failed:
            raise BatchRefused(f"the writer process could not write {failed} call observation(s)")
        self.written += written
        return written

    async def aclose(self, timeout: float = 30.0) -> None:
        """Close the pipe (the child writes what it holds and exits), then wait for it."""
        proc, reader = self._proc, self._reader
        if proc is None:
            return
        self._proc = None  # its reader then ends quietly: this is no death
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("call-record writer process %d did not finish in %.0f s; killed", proc.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(reader, 5)

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# -- The child -------------------------------------------------------------------------------------


async def _serve(stdin: asyncio.StreamReader, out: Any) -> None:
    head = await stdin.readexactly(FRAME.size)
    length, _ = FRAME.unpack(head)
    config = json.loads(await stdin.readexactly(length))
    logging.basicConfig(
        level=config.get("log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s[writer] %(message)s",
    )
    db = Database(config["database_url"])

    def answer(seq: int, written: int, failed: int) -> None:
        body = json.dumps([written, failed]).encode()
        out.write(FRAME.pack(len(body), seq) + body)
        out.flush()

    try:
        answer(0, 0, 0)
        while True:
            try:
                head = await stdin.readexactly(FRAME.size)
            except asyncio.IncompleteReadError:
                return  # the server closed the pipe (or died): nothing more is coming
            length, seq = FRAME.unpack(head)
            if length > MAX_FRAME:
                raise ValueError(f"a frame of {length} bytes")
            batch = unpack(await stdin.readexactly(length))
            try:
                written = await write_batch(db=db, observations=batch)
            except Exception:
                log.exception("dropped a batch of %d call observation(s)", len(batch))
                answer(seq, 0, len(batch))
            else:
                answer(seq, written, 0)
    finally:
        await db.dispose()


async def _main() -> None:
    # The answers get standard output to themselves: anything else printed goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin.buffer)
    await _serve(stdin, answers)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when this ends (end of input)
    with contextlib.suppress(BrokenPipeError):
        asyncio.run(_main())


if __name__ == "__main__":
    main()
