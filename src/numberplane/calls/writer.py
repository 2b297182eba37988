"""A writer process for call records: the merge and the COPY off the data plane's event loop.

Merging a batch into rows and writing it is CPU work of the same order as answering the calls
(a few tens of microseconds each); done on the answering process's event loop it takes that
from the answers, and a thread of the same process would hold its GIL. On PostgreSQL the
recorder hands each batch to a child process instead (``WriterProcess``): the observations go
down a pipe as plain tuples, the child writes them with ``service.write_batch`` and answers
with how many calls it wrote. One batch is in flight at a time, so a crash of either process
loses at most that batch (as with writing in-process); the merge is idempotent, so a batch the
child may or may not have committed before it died is simply written again in-process.

Run as ``python -m numberplane.calls.writer`` with the database URL in ``NUMBERPLANE_CALL_WRITER_URL``;
frames both ways are a 4-byte big-endian length and a pickle (a private pipe between a process
and its own child: nothing else writes to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from typing import Any

from numberplane.calls.service import DecisionFacts, Observation, write_batch
from numberplane.kernel.db import Database

log = logging.getLogger("numberplane.calls")

URL_ENV = "NUMBERPLANE_CALL_WRITER_URL"
_HEADER = struct.Struct(">I")
_FAILED = -1  # the child's answer for a batch the database refused (after write_batch's retries)


class WriterGone(Exception):
    """The child exited (or its pipe broke) before answering."""


def flatten(obs: Observation) -> tuple[Any, ...]:
    """An observation as plain values for the pipe: its trace and webhook facts, when functions
    (closures over routing's objects), are called here."""
    facts = obs.decision
    decision = None
    if facts is not None:
        decision = (
            facts.outcome,
            facts.reason,
            facts.agent_id,
            facts.agent_version,
            facts.webhook() if callable(facts.webhook) else facts.webhook,
            facts.decision_ms,
            facts.trace() if callable(facts.trace) else facts.trace,
        )
    return (
        obs.org_id,
        obs.carrier,
        obs.carrier_call_id,
        obs.at,
        obs.phone_number_id,
        obs.phone_number,
        obs.from_number,
        obs.carrier_account_id,
        obs.status,
        obs.duration_s,
        obs.sip_code,
        decision,
    )


def unflatten(values: tuple[Any, ...]) -> Observation:
    decision = values[11]
    return Observation(
        org_id=values[0],
        carrier=values[1],
        carrier_call_id=values[2],
        at=values[3],
        phone_number_id=values[4],
        phone_number=values[5],
        from_number=values[6],
        carrier_account_id=values[7],
        status=values[8],
        duration_s=values[9],
        sip_code=values[10],
        decision=DecisionFacts(*decision) if decision is not None else None,
    )


def _frame(value: Any) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own child's pipe


class WriterProcess:
    """The parent's side: starts the child, sends it a batch, waits for its answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        env = {**os.environ, URL_ENV: self.url}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "numberplane.calls.writer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )

    async def write(self, observations: Sequence[Observation]) -> int:
        """Have the child write ``observations``; the calls written. Raises ``WriterGone`` when
        the child is not there to answer, ``RuntimeError`` when the database refused the batch."""
        frame = _frame([flatten(obs) for obs in observations])
        async with self._lock:
            proc = self._proc
            if proc is None or proc.returncode is not None or proc.stdin is None or proc.stdout is None:
                raise WriterGone("no writer process")
            try:
                proc.stdin.write(frame)
                await proc.stdin.drain()
                written = await _read_frame(proc.stdout)
            except (OSError, asyncio.IncompleteReadError, EOFError) as exc:
                raise WriterGone(str(exc) or exc.__class__.__name__) from exc
        if written == _FAILED:
            raise RuntimeError("the call writer process could not write a batch (see its log)")
        return int(written)

    async def aclose(self) -> None:
        """Close the pipe (the child finishes the batch it has and exits); wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def serve(url: str) -> None:
    """The child: write each batch read from stdin, answer on the original stdout."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    db = Database(url)
    try:
        while True:
            try:
                rows = await _read_frame(reader)
            except asyncio.IncompleteReadError:
                return  # the parent closed the pipe: done
            try:
                written = await write_batch(db=db, observations=[unflatten(r) for r in rows])
            except Exception:
                log.exception("dropped a batch of %d call observation(s)", len(rows))
                written = _FAILED
            out.write(_frame(written))
    finally:
        await db.dispose()


def main() -> None:
    level = os.environ.get("NUMBERPLANE_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING))
    url = os.environ[URL_ENV]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        asyncio.run(serve(url))
    else:
        uvloop.run(serve(url))


if __name__ == "__main__":
    main()
