"""Benchmark: routing decisions on /voice/twilio with 1,000,000 numbers in PostgreSQL.

    .venv/bin/python -m bench.routing                                   # 1,000,000 numbers
    .venv/bin/python -m bench.routing --numbers 100000 --requests 20000  # quicker
    NUMBERPLANE_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres  (the default)

What it does, in one run:

1. creates a throwaway PostgreSQL database, migrates it, and bulk-loads N numbers (COPY via
   asyncpg) each bound to an agent, plus an org and a Twilio carrier account; prints the plan of
   the routing query (an index scan);
2. starts ``uvicorn`` (uvloop + httptools through ``kernel.serving``'s protocol, as ``numberplane
   serve`` runs it; one worker, no access log) serving Numberplane, and
   fires real Twilio-signed requests (signatures from twilio's RequestValidator) at
   ``/voice/twilio`` from this process over keep-alive connections:
   - cold: every request a number not yet seen (cache miss: one indexed query),
   - warm: the same numbers again (cache hits),
   - steady: an open-loop 1,000 calls/s for 10 s (latency from the *scheduled* send time, so
     queueing counts), warm and cold;
   - warm again under ``wrk`` (C; ``--wrk-seconds``, 0 for none), each request a new call:
     this process's load generator takes ~35 us of CPU per request, as much as PostgreSQL and
     the call-record writer together, on the same cores, so its warm rate says as much about the
     machine as about the server; with wrk the server has the most of a core to itself;
   - without call records, warm under ``wrk`` once more with every call from a caller of its
     own: the phases above all call from one number, whose reading the server memoises, while
     most real calls come from a number it has not seen lately, which it reads afresh
     (``kernel.e164``: ~3.5 us in process);
3. stops it and starts the same uvicorn stack serving a bare ASGI app that drains the body and
   answers a constant TwiML document, and measures it the same way;
4. prints decisions/s, p50/p99, and the Numberplane/bare throughput ratio. A closed-loop phase
   ends when the server's call-record queue is empty (its /metrics): the records written
   behind the answers count in its time and CPU, even when the writer lags the load.

Every response is checked (status 200 and a ``<Stream`` in the body). Loops are bounded. The
load generator and the server share the machine; the figures say so. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BARE_TWIML = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://agents.example.com/bench">'
    b'<Parameter name="agent_id" value="01a2b3c4-0000-7000-8000-000000000000" />'
    b'<Parameter name="agent_version" value="1" /><Parameter name="call_id" value="CA0" />'
    b'<Parameter name="phone_number_id" value="01a2b3c4-0000-7000-8000-000000000001" />'
    b'<Parameter name="to" value="+14152000000" /><Parameter name="from" value="+12125550123" />'
    b"</Stream></Connect></Response>"
)


async def bare_app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    """The baseline: same server stack, no work beyond draining the body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/xml"),
                (b"content-length", str(len(BARE_TWIML)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BARE_TWIML})


# -- Data --------------------------------------------------------------------------------------------

AREA_CODES = ("415", "212", "312", "646", "206", "303", "617", "512")


def number_at(index: int) -> str:
    """The index-th benchmark number: 800 exchanges x 10,000 lines per area code."""
    area = AREA_CODES[index // 8_000_000]
    exchange = 200 + (index // 10_000) % 800
    return f"+1{area}{exchange}{index % 10_000:04d}"


@dataclass
class Seed:
    org_id: str
    account_sid: str
    auth_token: str
    token: str = ""  # the org's API key (bench.steady asks /v1/route with it)


def pg_server() -> str:
    """The PostgreSQL server the benches make their throwaway databases on:
    ``NUMBERPLANE_BENCH_DATABASE_URL`` (asyncpg's driver), also the tests' helpers' default."""
    base = os.environ.get(
        "NUMBERPLANE_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ).replace("postgresql://", "postgresql+asyncpg://", 1)
    os.environ.setdefault("NUMBERPLANE_TEST_DATABASE_URL", base)
    return base


async def load(url: str, count: int) -> Seed:
    import asyncpg
    from sqlalchemy.engine import make_url

    from numberplane.agents.models import Agent, AgentVersion
    from numberplane.carriers import service as carriers_service
    from numberplane.carriers.models import CarrierAccount
    from numberplane.kernel.crypto import encrypt
    from numberplane.kernel.db import Actor, Database, utcnow
    from numberplane.kernel.ids import new_id

    db = Database(url)
    async with db.uow(Actor.cli()) as uow:
        org, key = await carriers_service.open_org(uow=uow, name="bench")
        await uow.commit()
    account_sid, auth_token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    account_id, agent_id = new_id(), new_id()
    config = {"connect": {"stream_url": "wss://agents.example.com/bench"}}
    async with db.session() as session:
        session.add(
            CarrierAccount(
                id=account_id,
                org_id=org.id,
                carrier="twilio",
                name="bench",
                config={"account_sid": account_sid},
                credentials_enc=encrypt(f'{{"auth_token": "{auth_token}"}}'),
            )
        )
        session.add(Agent(id=agent_id, org_id=org.id, name="bench agent", version=1, config=config))
        await session.flush()
        session.add(AgentVersion(agent_id=agent_id, version=1, config=config))
        await session.commit()
    await db.dispose()

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    now = utcnow()
    ms = int(now.timestamp() * 1000)
    batch = 100_000
    for start in range(0, count, batch):
        ids = [new_id() for _ in range(start, min(start + batch, count))]
        numbers = [
            (
                ids[i - start],
                org.id,
                number_at(i),
                "US",
                number_at(i)[2:5],
                "local",
                '{"voice": true, "sms": true, "mms": false, "fax": false}',
                "active",
                "imported",
                "twilio",
                account_id,
                False,
                "{}",
                "{}",
                now,
                now,
                ms,
            )
            for i in range(start, min(start + batch, count))
        ]
        await conn.copy_records_to_table(
            "phone_numbers",
            records=numbers,
            columns=[
                "id", "org_id", "phone_number", "country", "area_code", "number_type", "capabilities",
                "status", "origin", "carrier", "carrier_account_id", "outbound", "metadata", "extras",
                "created_at", "updated_at", "last_modification_ms",
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "phone_number_agents",
            records=[(n, "inbound", agent_id, None, 1.0, 0) for n in ids],
            columns=["phone_number_id", "direction", "agent_id", "version", "weight", "position"],
        )
        if sys.stdout.isatty():
            print(f"  loaded {min(start + batch, count):>9,} numbers", end="\r", flush=True)
    # VACUUM and CHECKPOINT too: otherwise autovacuum and the checkpointer work through the
    # freshly COPYed million rows in the middle of the measurements.
    await conn.execute("VACUUM ANALYZE")
    await conn.execute("CHECKPOINT")
    print(f"  loaded {count:,} numbers (+ {count:,} agent bindings) in {time.perf_counter() - started:.1f} s")
    await conn.close()
    return Seed(org_id=org.id, account_sid=account_sid, auth_token=auth_token, token=key.token)


async def explain(url: str) -> None:
    import asyncpg
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.engine import make_url

    from numberplane.routing.snapshot import SNAPSHOT_QUERY

    stmt = SNAPSHOT_QUERY.params(e164=number_at(12_345))
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    conn = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + sql)
    await conn.close()
    print("  plan of the routing query (EXPLAIN ANALYZE):")
    for row in rows:
        line = row[0]
        if any(word in line for word in ("Scan", "Join", "Loop", "Execution", "Index Cond")):
            print("    " + line.strip())


async def count_calls(url: str) -> None:
    """How many call records the recorded run left (every answered request should be one)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    calls = await conn.fetchval("SELECT count(*) FROM calls")
    events = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'call.started'")
    await conn.close()
    print(
        f"  call records written by the recorded run: {calls:,} ({events:,} call.started events: "
        "the bench org has no webhook endpoint, so none are written)"
    )


# -- Load generation ----------------------------------------------------------------------------------


def call_id(tag: int, index: int) -> str:
    """The call id of a phase's ``index``-th request: ``tag`` keeps phases apart, so every request
    is a new call as the call records see it."""
    return f"CA{tag:04x}{index:028x}"


CALLER = "+12125550123"


def caller_at(index: int) -> str:
    """The index-th distinct caller (10,000,000 of them, none a benchmark number)."""
    return f"+1646{2_000_000 + index % 8_000_000:07d}"


def twilio_extras(to: str, caller: str) -> dict[str, str]:
    """The rest of what Twilio sends with an inbound call: the called and calling numbers again,
    with their place, the caller's STIR/SHAKEN verdict, and a call token (a JSON document holding
    a signed token, ~550 characters once form-encoded). Real bodies are ~1 KB with 27 parameters,
    and the server decodes every one: the signature covers them all."""
    digest = hashlib.sha512(to.encode() + caller.encode()).digest()
    token = {
        "parentCallInfoToken": base64.urlsafe_b64encode(digest * 6).decode().rstrip("="),
        "identityHeaderTokens": [],
        "parentCallSid": "CA" + digest[:16].hex(),
    }
    return {
        "CallToken": json.dumps(token, separators=(",", ":")),
        "Called": to,
        "CalledCity": "SAN FRANCISCO",
        "CalledState": "CA",
        "CalledZip": "94103",
        "CalledCountry": "US",
        "Caller": caller,
        "CallerCity": "NEW YORK",
        "CallerState": "NY",
        "CallerZip": "10001",
        "CallerCountry": "US",
        "FromCity": "NEW YORK",
        "FromState": "NY",
        "FromZip": "10001",
        "StirVerstat": "TN-Validation-Passed-A",
        "ToCity": "SAN FRANCISCO",
        "ToState": "CA",
        "ToZip": "94103",
    }


def signed_requests(
    seed: Seed,
    base: str,
    numbers: list[str],
    tag: int = 0,
    *,
    new_callers: bool = False,
    full: bool = False,
    status: str | None = None,
) -> list[bytes]:
    """One Twilio-signed request per number; ``tag`` keeps call ids apart between phases (each
    request is a new call, as the call records see it). Every call comes from ``CALLER``, or,
    with ``new_callers``, each from a number of its own (``caller_at``; none another tag's) as
    most real calls do: the server then reads each caller's number afresh instead of from its
    memo. The request carries the 9 parameters routing reads, or with ``full`` all 27 Twilio
    sends (``twilio_extras``). With ``status`` (``completed``...), each is instead the call's status
    callback to ``/voice/twilio/status``, 42 s long."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(seed.auth_token)
    out = []
    host = base.split("//", 1)[1]
    for i, to in enumerate(numbers):
        params = {
            "AccountSid": seed.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_id(tag, i),
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": caller_at(tag * 1_000_000 + i) if new_callers else CALLER,  # none seen in another phase
            "FromCountry": "US",
            "To": to,
            "ToCountry": "US",
        }
        if full:
            params.update(twilio_extras(to, params["From"]))
        path = "/voice/twilio"
        if status is not None:
            params.update(CallStatus=status, CallDuration="42")
            path = "/voice/twilio/status"
        body = urlencode(params).encode()
        signature = validator.compute_signature(base + path, params)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: TwilioProxy/1.1\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


WRK = "/usr/bin/wrk"
# How wrk is scheduled: ``batch`` (the default) or ``normal``, by NUMBERPLANE_BENCH_WRK_POLICY.
WRK_POLICY = os.environ.get("NUMBERPLANE_BENCH_WRK_POLICY", "batch")


def have_wrk() -> bool:
    return os.path.exists(WRK)


def sched_batch() -> None:
    """Run wrk (a ``preexec_fn``) as SCHED_BATCH: a load generator on the server's own machine,
    which must not preempt the server each time an answer wakes it.

    A carrier's requests come from another machine. wrk here runs beside the server, and wakes
    on each answer; while the other core is idle it wakes there. With call records on, that core
    holds PostgreSQL and the writer, so the kernel woke wrk on the server's core, where each
    wake-up preempted the server: 0.6-0.8 involuntary context switches a request against 0.003
    without records (``perf record -e sched:sched_switch``: wrk was ~99% of the preemptions),
    and the server's CPU a decision rose 20-40%, where py-spy put recording's own work at ~5 us.
    A SCHED_BATCH thread never preempts on waking (sched(7)); it runs when the server waits or
    its slice ends: the preemptions fall to 0.006-0.08 a request. Every phase, the bare app's
    included, runs so. ``NUMBERPLANE_BENCH_WRK_POLICY=normal`` runs wrk as before, for an A/B."""
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def wrk_preexec(policy: str = WRK_POLICY) -> Callable[[], None] | None:
    """What to run wrk under: ``sched_batch`` for ``batch``, nothing (the default policy) else."""
    return sched_batch if policy == "batch" else None


def lua_script(requests: list[bytes], path: Path) -> None:
    """A wrk script that sends the given raw requests' bodies and signatures in turn. They go in
    a data file beside it, one request a line, read when wrk starts (a Lua function holds at most
    65,536 constants, so a table written into the script would limit the requests), and each is
    formatted then, once: formatting it per request cost wrk 3.4 of its 15 us of CPU a request,
    on the cores the server measured shares (bare app, 190,000 requests: 14.9 -> 11.5 us)."""
    url_path = requests[0].split(b" ", 2)[1].decode()  # every request of a script: one endpoint
    lines = []
    for raw in requests:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.split(b" ", 2)[1].decode() == url_path, "one endpoint a script"
        signature = re.search(rb"X-Twilio-Signature: (\S+)", head).group(1)  # type: ignore[union-attr]
        lines.append(signature + b" " + body)
    data = path.with_suffix(".requests")
    data.write_bytes(b"\n".join(lines) + b"\n")
    path.write_text(
        "local reqs = {}\n"
        f'for line in io.lines("{data}") do\n'
        '  local signature, body = line:match("^(%S+) (.*)$")\n'
        '  local headers = {["Content-Type"] = "application/x-www-form-urlencoded", '
        '["X-Twilio-Signature"] = signature}\n'
        f'  reqs[#reqs + 1] = wrk.format("POST", "{url_path}", headers, body)\n'
        "end\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #reqs + 1\n"
        "  return reqs[i]\n"
        "end\n"
    )


def run_wrk(
    port: int, script: Path, seconds: int, connections: int, threads: int = 2, policy: str = WRK_POLICY
) -> tuple[float, float, int, str, float]:
    """Run wrk; (req/s, p99 ms, requests, errors note, seconds it ran)."""
    done = subprocess.run(
        [
            WRK,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        preexec_fn=wrk_preexec(policy),
    )
    if "Requests/sec" not in done.stdout:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    return wrk_figures(done.stdout)


def wrk_figures(out: str) -> tuple[float, float, int, str, float]:
    """What a wrk run printed (``--latency``): (req/s, p99 ms, requests, errors note, seconds it ran)."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert found is not None, out
    total, ran = int(found.group(1)), float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    p99_ms = float("nan")
    if p99:
        value, unit = float(p99.group(1)), p99.group(2)
        p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, p99_ms, total, f"NON-2xx {errors.group(1)}" if errors else "", ran


def content_length(head: bytes) -> int:
    """A response head's ``Content-Length`` (0 when it has none)."""
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = content_length(head)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu_us: float | None = None  # server CPU time (user + system) per request
    writer_cpu_us: float | None = None  # its call-record writer process's, per request

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"  {self.name:<34} {self.requests:>7,} req  {self.rate:>8,.0f} req/s  "
            f"p50 {self.pct(50):6.2f} ms  p99 {self.pct(99):6.2f} ms  "
            f"max {max(self.latencies) * 1000:7.2f} ms"
            + (f"  server CPU {self.cpu_us:4.0f} us/req" if self.cpu_us is not None else "")
            + (f" (+ writer {self.writer_cpu_us:3.0f})" if self.writer_cpu_us else "")
            + (f"  ERRORS {self.errors}" if self.errors else "")
        )


@dataclass
class WrkResult:
    """A closed-loop phase driven by wrk (C): the load generator takes little of the machine, so
    the server, its writer and PostgreSQL have the cores to themselves; the rate is over wrk's
    run plus the wait for the server's call-record queue to empty."""

    name: str
    requests: int
    seconds: float
    p99_ms: float
    cpu_us: float
    writer_cpu_us: float
    errors: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"  {self.name:<34} {self.requests:>7,} req  {self.rate:>8,.0f} req/s  "
            f"p99 {self.p99_ms:6.2f} ms  server CPU {self.cpu_us:4.0f} us/req"
            + (f" (+ writer {self.writer_cpu_us:3.0f})" if self.writer_cpu_us else "")
            + (f"  {self.errors}" if self.errors else "")
        )


def _ok(status: int, body: bytes) -> bool:
    return status == 200 and b"<Stream" in body


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc), 0 elsewhere."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int | None) -> float:
    """CPU time of a process's live children (a server's call-record writer; uvicorn's workers)."""
    if pid is None:
        return 0.0
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return sum(cpu_seconds(kid) for kid in kids)


def machine_ticks() -> list[int]:
    """The whole machine's CPU time so far by kind, in clock ticks: the fields of Linux
    ``/proc/stat``'s ``cpu`` line (user, nice, system, idle, iowait, irq, softirq, steal...)."""
    with open("/proc/stat") as handle:
        return [int(value) for value in handle.readline().split()[1:]]


def stolen_seconds() -> float:
    """CPU time the hypervisor gave to others while this VM's CPUs wanted it ("steal"), so far;
    0 where the kernel does not say."""
    try:
        return machine_ticks()[7] / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def involuntary_switches(pid: int) -> int:
    """How often the kernel took a process's CPU from it while it could still run (Linux /proc;
    0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process on this machine (the routing query's backends, the
    call-record writer's, PostgreSQL's own), from /proc; 0 elsewhere. A backend that exits within
    a phase takes its time with it: the server and its writer keep theirs open."""
    total = 0.0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                if handle.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += cpu_seconds(int(entry))
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children (uvicorn's workers, a server's
    call-record writer)."""
    return cpu_seconds(pid) + children_cpu_seconds(pid)


def busy_ticks() -> tuple[int, int]:
    """(all, idle) CPU time of the whole machine so far, in clock ticks (Linux ``/proc/stat``)."""
    fields = machine_ticks()
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The machine's busy cores on average between two ``busy_ticks`` readings."""
    total, idle = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * (1 - idle / total) if total > 0 else 0.0


class LoadWindow:
    """The machine while the servers are loaded: samples, every 50 ms in a thread, the machine's
    busy ticks and the server tree's CPU, and keeps the span in which the servers worked.

    wrk reads its whole script (a few hundred MB of Lua) on one core before it sends a request,
    and its run's figures start after that; measured over the whole wrk command, the machine
    looked a quarter idle (1.70-1.76 of 2 cores busy) when it was full (1.93-1.98) under the
    load. Only the server tree's CPU is read per process: what the rest of the machine did in
    the span is busy minus that (wrk, the kernel's loopback TCP, PostgreSQL, anything else).
    """

    PERIOD_S = 0.05
    LOADED = 0.3  # of a core: a sample in which the servers used less was not under load

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._samples: list[tuple[float, tuple[int, int], float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self._samples.append((time.monotonic(), busy_ticks(), tree_cpu(self.pid)))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.PERIOD_S):
            self._sample()

    def __enter__(self) -> LoadWindow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def span(self) -> tuple[float, float, float]:
        """(seconds, busy cores, servers' CPU seconds) from the first to the last loaded sample."""
        samples = self._samples
        loaded = [
            i
            for i in range(1, len(samples))
            if samples[i][2] - samples[i - 1][2] >= self.LOADED * (samples[i][0] - samples[i - 1][0])
        ]
        if not loaded:
            return 0.0, 0.0, 0.0
        first, last = samples[loaded[0] - 1], samples[loaded[-1]]
        return last[0] - first[0], busy_cores(first[1], last[1]), last[2] - first[2]


def pending_records(metrics: str) -> float:
    """``numberplane_call_records_pending`` in a /metrics page (0 when it has none)."""
    for line in metrics.splitlines():
        if line.startswith("numberplane_call_records_pending "):
            return float(line.split()[1])
    return 0.0


async def drained(conn: Connection, limit_s: float = 120.0) -> None:
    """Wait (at most ``limit_s``) until the server's call-record queue is empty (its /metrics);
    a server without one (records off, the bare app) is drained at once."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        status, body = await conn.send(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        if not (status == 200 and pending_records(body.decode("utf-8", "replace"))):
            return
        await asyncio.sleep(0.05)


async def closed_loop(
    name: str, port: int, requests: list[bytes], concurrency: int, pid: int | None = None
) -> Result:
    conns = [await Connection.open(port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0

    async def worker(conn: Connection, mine: list[bytes]) -> None:
        nonlocal errors
        for request in mine:
            t0 = time.perf_counter()
            status, body = await conn.send(request)
            latencies.append(time.perf_counter() - t0)
            if not _ok(status, body):
                errors += 1

    cpu, writer_cpu = cpu_seconds(pid), children_cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker(c, requests[i::concurrency]) for i, c in enumerate(conns)))
    # Until the server has written every call record behind its answers: the write-behind's
    # work counts, in time and CPU, even when it lags the load (otherwise a recorder that falls
    # behind would look cheaper than one that keeps up).
    await drained(conns[0])
    elapsed = time.perf_counter() - started
    cpu_us = (cpu_seconds(pid) - cpu) / len(requests) * 1e6 if pid else None
    writer_us = (children_cpu_seconds(pid) - writer_cpu) / len(requests) * 1e6 if pid else None
    for conn in conns:
        conn.close()
    return Result(name, len(requests), elapsed, latencies, errors, cpu_us, writer_us)


class _PacedConnection(asyncio.Protocol):
    """One keep-alive connection of the paced load: a request written, its response read from the
    bytes as they arrive (status line, ``Content-Length``, body)."""

    def __init__(self, load: _PacedLoad) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.scheduled = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes, scheduled: float) -> None:
        assert self.transport is not None
        self.scheduled = scheduled
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = content_length(bytes(buffer[:end]))
        if len(buffer) < end + 4 + length:
            return
        status, body = int(buffer[9:12]), bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        self.load.answered(self, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.lost(exc)


class _PacedLoad:
    """The connections of a paced phase: a request goes to an idle connection, or waits for the
    first one free (its latency still counts from its scheduled time)."""

    def __init__(self, total: int, loop: asyncio.AbstractEventLoop) -> None:
        # First in, first out: every connection is used in turn, none left idle long enough
        # for the server's keep-alive timeout to close it.
        self.idle: deque[_PacedConnection] = deque()
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.latencies: list[float] = []
        self.errors = 0
        self.left = total
        self.closing = False
        self.done: asyncio.Future[None] = loop.create_future()

    def submit(self, request: bytes, scheduled: float) -> None:
        if self.idle:
            self.idle.popleft().send(request, scheduled)
        else:
            self.waiting.append((request, scheduled))

    def answered(self, conn: _PacedConnection, status: int, body: bytes) -> None:
        self.latencies.append(time.perf_counter() - conn.scheduled)
        if not _ok(status, body):
            self.errors += 1
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.idle.append(conn)
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)

    def lost(self, exc: Exception | None) -> None:
        if not self.closing and not self.done.done():
            self.done.set_exception(ConnectionError(f"the server closed a connection mid-phase: {exc!r}"))


async def open_loop(name: str, port: int, requests: list[bytes], rate: float, pool_size: int = 64) -> Result:
    """Send at a fixed schedule; latency counts from the scheduled time (no coordinated omission).

    Connections are protocols, used in turn: no task, stream read or queue per request. The load
    generator shares the machine with what it measures; with a task and a stream per request it
    took 114-149 us of CPU a call at 1,000 calls/s, now 88-114 (bench.steady, 100,000 and
    1,000,000 numbers), and its own pauses no longer set the phases' worst latencies (max 12-65 ms
    -> 6-26 ms)."""
    loop = asyncio.get_running_loop()
    load = _PacedLoad(len(requests), loop)
    for _ in range(pool_size):
        _, conn = await loop.create_connection(lambda: _PacedConnection(load), "127.0.0.1", port)
        load.idle.append(conn)
    connections = list(load.idle)
    interval = 1.0 / rate
    started = time.perf_counter()
    for i, request in enumerate(requests):
        scheduled = started + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        load.submit(request, scheduled)
    await asyncio.wait_for(load.done, timeout=120)
    elapsed = time.perf_counter() - started
    load.closing = True
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
    return Result(name, len(requests), elapsed, load.latencies, load.errors)


async def wrk_phase(name: str, port: int, script: Path, args: argparse.Namespace, pid: int) -> WrkResult:
    cpu, writer_cpu = cpu_seconds(pid), children_cpu_seconds(pid)
    _, p99, total, errors, ran = await asyncio.to_thread(
        run_wrk, port, script, args.wrk_seconds, args.concurrency, 1
    )
    waited = time.perf_counter()
    conn = await Connection.open(port)
    await drained(conn)
    conn.close()
    seconds = ran + time.perf_counter() - waited
    total = max(total, 1)
    return WrkResult(
        name,
        total,
        seconds,
        p99,
        (cpu_seconds(pid) - cpu) / total * 1e6,
        (children_cpu_seconds(pid) - writer_cpu) / total * 1e6,
        errors,
    )


# -- Servers ------------------------------------------------------------------------------------------


def start_server(
    app: str, port: int, env: dict[str, str], factory: bool, wrapper: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """uvicorn as ``numberplane serve`` runs it (uvloop, httptools through Numberplane's protocol,
    which sends a loop turn's writes together), for Numberplane and for the bare baseline alike.
    ``NUMBERPLANE_BENCH_HTTP=httptools`` runs uvicorn's own protocol instead, for an A/B.
    ``wrapper``: a command the server runs under (bench.instructions: valgrind)."""
    from numberplane.kernel.serving import PROTOCOL

    protocol = os.environ.get("NUMBERPLANE_BENCH_HTTP", PROTOCOL)

    command = [
        *wrapper, sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", protocol, "--no-access-log", "--log-level", "warning",
        "--backlog", "4096",
    ]  # fmt: skip
    if factory:
        command.append("--factory")
    return subprocess.Popen(command, env=env)


async def wait_ready(port: int, proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            conn = await Connection.open(port)
            status, _ = await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.close()
            if status in (200, 404, 405):
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def bench_target(
    label: str,
    proc: subprocess.Popen[bytes],
    port: int,
    sets: dict[str, list[bytes]],
    args: argparse.Namespace,
    cold: bool,
    script: Path | None = None,
    more: tuple[tuple[str, Path | None], ...] = (),
) -> tuple[list[Result], WrkResult | None, list[WrkResult | None]]:
    """The target's phases; ``more``: further wrk phases (name, script; None: skipped), after
    the warm one, their results in that order."""
    await wait_ready(port, proc)
    results: list[Result] = []
    await closed_loop("warm-up", port, sets["warmup"], args.concurrency)
    if cold:
        results.append(
            await closed_loop(f"{label} cold (miss: 1 query)", port, sets["cold"], args.concurrency, proc.pid)
        )
    results.append(
        await closed_loop(f"{label} warm (cache hit)", port, sets["warm"], args.concurrency, proc.pid)
    )
    results.append(await open_loop(f"{label} steady {args.rate:.0f}/s warm", port, sets["steady"], args.rate))
    if cold:
        results.append(
            await open_loop(f"{label} steady {args.rate:.0f}/s cold", port, sets["steady_cold"], args.rate)
        )
    for result in results:
        print(result.line(), flush=True)
    server_bound = None
    if script is not None:
        server_bound = await wrk_phase(f"{label} warm, wrk", port, script, args, proc.pid)
        print(server_bound.line(), flush=True)
    extras: list[WrkResult | None] = []
    for phase, path in more:
        measured: WrkResult | None = None
        if path is not None:
            measured = await wrk_phase(f"{label} {phase}, wrk", port, path, args, proc.pid)
            print(measured.line(), flush=True)
        extras.append(measured)
    print(f"  (load average {os.getloadavg()[0]:.2f})", flush=True)
    return results, server_bound, extras


async def records_rounds(
    args: argparse.Namespace, port: int, env: dict[str, str], seed: Seed, numbers: list[str], scratch: Path
) -> None:
    """``--records-rounds N``: decisions/s under wrk with call records and without, the two
    servers in turn (alternating which goes first), N rounds, and the median of the rounds'
    ratios.

    One pair of runs, as the full run makes, moved from 0.53x to 1.0x between pairs minutes apart
    on this VM (the same server's CPU a decision went from 74 to 128 us): a single pair says
    little. Each run is a fresh server, warmed by ``numbers`` (closed loop, which waits until its
    records are written), then loaded by wrk for ``--wrk-seconds``, every request a new call
    (call ids of the run's own); its rate counts the wait for the last record to be written. Also
    printed: the server's involuntary context switches a request, the sign of a load generator
    preempting it (``sched_batch``), the hypervisor's steal during the run (a run with
    hundreds of ms of it measured the host as much as the server), PostgreSQL's CPU a request
    (with records, the writes), and the machine's busy cores while the server was under load
    (``LoadWindow``): the writer and PostgreSQL share the two cores with the server and wrk."""
    ratios = []
    for index in range(args.records_rounds):
        tag = 0x100 + 2 * index
        calls = [numbers[i % len(numbers)] for i in range(args.wrk_requests)]
        script = scratch / f"records-round-{index}.lua"
        public = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(lua_script, signed_requests(seed, public, calls, tag=tag), script)
        warm_up = signed_requests(seed, public, numbers, tag=tag + 1)
        rates: dict[bool, float] = {}
        for recorded in (False, True) if index % 2 == 0 else (True, False):
            label = "with call records" if recorded else "without call records"
            app_env = {**env, "NUMBERPLANE_CALL_RECORDS": "1" if recorded else "0"}
            proc = start_server("numberplane.app:create_app", port, app_env, True)
            try:
                await wait_ready(port, proc)
                await closed_loop("warm-up", port, warm_up, args.concurrency)
                switches, stolen = involuntary_switches(proc.pid), stolen_seconds()
                postgres = postgres_cpu_seconds()
                with LoadWindow(proc.pid) as window:
                    measured = await wrk_phase(f"round {index + 1}, {label}", port, script, args, proc.pid)
                preempted = (involuntary_switches(proc.pid) - switches) / measured.requests
                stolen = stolen_seconds() - stolen
                postgres_us = (postgres_cpu_seconds() - postgres) / measured.requests * 1e6
                _, busy, _ = window.span()
            finally:
                stop_server(proc)
            print(
                measured.line(),
                f" PostgreSQL {postgres_us:.0f} us/req; the machine busy {busy:.2f} of {os.cpu_count()} "
                f"cores under load; preempted {preempted:.3f}/req, stolen {stolen * 1000:.0f} ms",
                flush=True,
            )
            rates[recorded] = measured.rate
        ratios.append(rates[True] / rates[False])
        print(f"    round {index + 1}: decisions/s with/without call records {ratios[-1]:.2f}", flush=True)
    print(
        f"\n  call records: decisions/s with/without, median of {len(ratios)} rounds "
        f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); wrk as {WRK_POLICY}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30_000, help="per closed-loop phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each steady phase")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--wrk-seconds", type=int, default=5, help="the wrk warm phase (0: none; needs /usr/bin/wrk)"
    )
    parser.add_argument(
        "--wrk-requests", type=int, default=100_000, help="distinct calls in the wrk phase's script"
    )
    parser.add_argument(
        "--records-rounds",
        type=int,
        default=0,
        help="instead of the phases: decisions/s with and without call records, N interleaved rounds",
    )
    args = parser.parse_args()
    args.numbers = max(10_000, min(args.numbers, 8_000_000 * len(AREA_CODES)))

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from tests.support import create_pg_database, drop_pg_database

    from numberplane.kernel.e164 import normalize_address
    from numberplane.migrate import upgrade

    url = await create_pg_database(pg_server())
    scratch = tempfile.TemporaryDirectory(prefix="np-bench-routing-")
    print(
        f"database: {url.rsplit('/', 1)[1]}  numbers: {args.numbers:,}  cpus: {os.cpu_count()}  "
        f"load average: {os.getloadavg()[0]:.2f}"
    )
    try:
        await asyncio.to_thread(upgrade, url)
        seed = await load(url, args.numbers)
        await explain(url)

        steady_count = int(args.rate * args.seconds)
        need = 2_000 + args.requests + steady_count
        rng = random.Random(7)
        picked: list[str] = []
        for index in rng.sample(range(args.numbers), min(args.numbers, need * 2)):
            number = number_at(index)
            if normalize_address(number) == number:
                picked.append(number)
            if len(picked) == need:
                break
        warmup, cold, steady_cold = (
            picked[:2_000],
            picked[2_000 : 2_000 + args.requests],
            picked[-steady_count:],
        )

        port = 18_000 + os.getpid() % 1000
        public = f"http://127.0.0.1:{port}"
        sets = {
            "warmup": signed_requests(seed, public, warmup, tag=1),
            "cold": signed_requests(seed, public, cold, tag=2),
            "warm": signed_requests(seed, public, cold, tag=3),
            "steady": signed_requests(
                seed, public, [cold[i % len(cold)] for i in range(steady_count)], tag=4
            ),
            "steady_cold": signed_requests(seed, public, steady_cold, tag=5),
        }
        script: Path | None = None
        callers_script: Path | None = None
        real_script: Path | None = None
        status_script: Path | None = None
        if args.wrk_seconds > 0 and have_wrk():
            # The warm numbers again, each request a call of its own (a new call id).
            script = Path(scratch.name) / "warm.lua"
            calls = [cold[i % len(cold)] for i in range(args.wrk_requests)]
            await asyncio.to_thread(lua_script, signed_requests(seed, public, calls, tag=6), script)
            # The same calls, each from a caller of its own (without records only: what reading
            # a new caller's number costs the answer).
            callers_script = Path(scratch.name) / "warm_callers.lua"
            await asyncio.to_thread(
                lua_script, signed_requests(seed, public, calls, tag=7, new_callers=True), callers_script
            )
            # And as Twilio sends them: each from a caller of its own, with all 27 parameters.
            real_script = Path(scratch.name) / "warm_real.lua"
            real = signed_requests(seed, public, calls, tag=8, new_callers=True, full=True)
            await asyncio.to_thread(lua_script, real, real_script)
            # With records: each warm call's status callback ("completed"), as Twilio sends one
            # (or more) for every call: the answers' records then meet their updates.
            status_script = Path(scratch.name) / "status.lua"
            callbacks = signed_requests(seed, public, calls, tag=6, status="completed")
            await asyncio.to_thread(lua_script, callbacks, status_script)
        elif args.wrk_seconds > 0:
            print(f"  {WRK} is not installed: no wrk phase (apt-get install wrk)")
        env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": url,
            "NUMBERPLANE_PUBLIC_URL": public,
            "NUMBERPLANE_LOG_LEVEL": "WARNING",
            "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0",
        }
        # The load generator's own garbage collector must not pause the measurements.
        gc.collect()
        gc.freeze()
        print(
            f"uvicorn (uvloop, httptools, 1 worker); load from this process, {args.concurrency} connections; "
            f"wrk scheduled as {WRK_POLICY}"
        )

        if args.records_rounds > 0 and script is not None:
            await records_rounds(args, port, env, seed, cold, Path(scratch.name))
            return

        async def serve_and_bench(
            label: str,
            app: str,
            app_env: dict[str, str],
            *,
            cold: bool,
            factory: bool = True,
            more: tuple[tuple[str, Path | None], ...] = (),
        ) -> tuple[list[Result], WrkResult | None, list[WrkResult | None]]:
            """One server's phases: start it, measure, stop it."""
            proc = start_server(app, port, app_env, factory)
            try:
                return await bench_target(label, proc, port, sets, args, cold=cold, script=script, more=more)
            finally:
                stop_server(proc)

        # Without call records, then with: the difference is what writing a record behind every
        # answer costs (each request is a new call; warm repeats the cold phase's numbers).
        unrecorded, unrecorded_wrk, (new_callers, real_traffic) = await serve_and_bench(
            "numberplane, no call records",
            "numberplane.app:create_app",
            {**env, "NUMBERPLANE_CALL_RECORDS": "0"},
            cold=True,
            more=(("warm, new callers", callers_script), ("warm, new callers, 27 parameters", real_script)),
        )
        ours, ours_wrk, (callbacks_wrk,) = await serve_and_bench(
            "numberplane",
            "numberplane.app:create_app",
            env,
            cold=True,
            more=(("status callbacks (completed)", status_script),),
        )
        await count_calls(url)
        bare, bare_wrk, _ = await serve_and_bench(
            "bare ASGI", "bench.routing:bare_app", {**env, "PYTHONPATH": REPO_ROOT}, cold=False, factory=False
        )

        warm, bare_warm = ours[1], bare[0]
        print()
        print(f"  ratio numberplane/bare, throughput (warm):  {warm.rate / bare_warm.rate:.2f}")
        print(f"  ratio numberplane/bare, throughput (cold):  {ours[0].rate / bare_warm.rate:.2f}")
        if warm.cpu_us and bare_warm.cpu_us and ours[0].cpu_us:
            # With one worker, saturated throughput is 1 / CPU per request: this ratio is what the
            # throughput ratio would be on a quiet machine, and is robust to other load on it.
            cpu_warm, cpu_cold = bare_warm.cpu_us / warm.cpu_us, bare_warm.cpu_us / ours[0].cpu_us
            print(f"  ratio numberplane/bare, server CPU per request (warm):  {cpu_warm:.2f}")
            print(f"  ratio numberplane/bare, server CPU per request (cold):  {cpu_cold:.2f}")
        print(
            f"  p99 at {args.rate:.0f}/s: warm {ours[2].pct(99):.2f} ms, cold {ours[3].pct(99):.2f} ms, "
            f"bare {bare[1].pct(99):.2f} ms"
        )
        print(
            f"  call records: decisions/s with/without, warm {warm.rate / unrecorded[1].rate:.2f}, "
            f"cold {ours[0].rate / unrecorded[0].rate:.2f}"
        )
        if warm.cpu_us and unrecorded[1].cpu_us:
            print(
                "  call records: server CPU per request without/with (warm): "
                f"{unrecorded[1].cpu_us / warm.cpu_us:.2f}"
            )
            if warm.writer_cpu_us:
                print(
                    "  call records: the writer process's CPU per recorded call (warm): "
                    f"{warm.writer_cpu_us:.0f} us; server + writer without/with: "
                    f"{unrecorded[1].cpu_us / (warm.cpu_us + warm.writer_cpu_us):.2f}"
                )
        print(
            f"  call records: p99 at {args.rate:.0f}/s with/without: warm {ours[2].pct(99):.2f} / "
            f"{unrecorded[2].pct(99):.2f} ms, cold {ours[3].pct(99):.2f} / {unrecorded[3].pct(99):.2f} ms"
        )
        if ours_wrk is not None and unrecorded_wrk is not None and bare_wrk is not None:
            wrapped = ours_wrk.requests > args.wrk_requests
            print(
                f"  with wrk (server-bound): numberplane/bare {ours_wrk.rate / bare_wrk.rate:.2f}, "
                f"without records/bare {unrecorded_wrk.rate / bare_wrk.rate:.2f}; call records: "
                f"decisions/s with/without {ours_wrk.rate / unrecorded_wrk.rate:.2f}"
                + (f" (calls repeated after {args.wrk_requests:,}: raise --wrk-requests)" if wrapped else "")
            )
        if unrecorded_wrk is not None and new_callers is not None:
            print(
                f"  a new caller each call (no records, wrk): {new_callers.cpu_us:.0f} us of server CPU a "
                f"decision against {unrecorded_wrk.cpu_us:.0f} us with one caller "
                f"({new_callers.cpu_us - unrecorded_wrk.cpu_us:+.0f} us: each new caller's number is read), "
                f"{new_callers.rate / unrecorded_wrk.rate:.2f}x the decisions/s"
            )
        if ours_wrk is not None and callbacks_wrk is not None:
            print(
                f"  a status callback (records on, wrk): {callbacks_wrk.cpu_us:.0f} us of server CPU and "
                f"{callbacks_wrk.writer_cpu_us:.0f} us of the writer's (the record's update) against an "
                f"answer's {ours_wrk.cpu_us:.0f} + {ours_wrk.writer_cpu_us:.0f} us"
            )
        if unrecorded_wrk is not None and real_traffic is not None:
            print(
                f"  and with the 27 parameters Twilio sends (~1 KB): {real_traffic.cpu_us:.0f} us "
                f"({real_traffic.cpu_us - unrecorded_wrk.cpu_us:+.0f} us), "
                f"{real_traffic.rate / unrecorded_wrk.rate:.2f}x the decisions/s"
            )
    finally:
        scratch.cleanup()
        if not args.keep:
            await drop_pg_database(url)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
