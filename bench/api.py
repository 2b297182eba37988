"""Benchmark: keyed API requests and ``/v1/route`` against their limits, side by side in one run.

    .venv/bin/python -m bench.api                          # SQLite, 100,000 numbers
    .venv/bin/python -m bench.api --db postgresql          # PostgreSQL (NUMBERPLANE_BENCH_DATABASE_URL)
    .venv/bin/python -m bench.api --numbers 10000 --seconds 3

One run, one machine, one after the other on the same uvicorn stack (uvloop, httptools through
``kernel.serving``'s protocol, as ``numberplane serve`` runs it; one
worker, no access log), each target loaded by ``wrk`` (/usr/bin/wrk, 1 thread, 16 connections):

1. bare ASGI: a constant answer (``bench.routing.bare_app``): the limit of the server stack;
2. Numberplane: ``GET /healthz`` (the framework alone), ``GET /v1/agents?limit=1`` and
   ``GET /v1/phone-numbers/{id}`` with a key, ``GET /v1/route?format=twiml`` with a key: with
   a new ``call_id`` per request (each a new call with its record, as a SIP platform's traffic
   is; wrk's Lua numbers them), and without one (no record);
3. the peer way: FastAPI plus one SQL query per call, no key (``peer_app``): the naive design.

Every target's answers are checked once before it is loaded (status 200, expected body). It
prints requests/s, p99 and server CPU per request (from /proc), and the ratios the issue names.
The load generator shares the machine with the server (and, here, with other work): compare
ratios within one run, not absolute figures across runs. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.routing import (
    REPO_ROOT,
    WRK,
    WRK_POLICY,
    children_cpu_seconds,
    cpu_seconds,
    number_at,
    pending_records,
    pg_server,
    start_server,
    stop_server,
    wrk_figures,
    wrk_preexec,
)

# -- The peer way: FastAPI + one query per call, no key -----------------------------------------------


def peer_app() -> Any:
    """What a team would write first: a FastAPI route that runs one query per call."""
    from fastapi import FastAPI, Response
    from sqlalchemy import text

    from numberplane.kernel.db import make_engine

    engine = make_engine(os.environ["NUMBERPLANE_DATABASE_URL"])
    app = FastAPI()
    query = text(
        "SELECT a.config FROM phone_numbers n JOIN phone_number_agents pa ON pa.phone_number_id = n.id "
        "AND pa.direction = 'inbound' JOIN agents a ON a.id = pa.agent_id WHERE n.phone_number = :e164 "
        "AND n.status IN ('pending', 'active', 'releasing')"  # so it uses the (partial) unique index
    )

    @app.get("/route")
    async def route(to: str, call_id: str = "") -> Response:
        async with engine.connect() as conn:
            row = (await conn.execute(query, {"e164": to})).first()
        if row is None:
            body = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="rejected" /></Response>'
        else:
            config = row[0] if isinstance(row[0], dict) else __import__("json").loads(row[0])
            url = config["connect"]["stream_url"]
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                f'<Stream url="{url}"><Parameter name="call_id" value="{call_id}" /></Stream>'
                "</Connect></Response>"
            )
        return Response(body, media_type="application/xml")

    return app


# -- Data ---------------------------------------------------------------------------------------------


@dataclass
class Seed:
    token: str
    number_id: str
    e164: str


async def seed(url: str, count: int) -> Seed:
    """An org with a key, an agent, and ``count`` numbers bound to it (bulk insert)."""
    from sqlalchemy import insert

    from numberplane.agents.models import Agent, AgentVersion
    from numberplane.carriers import service as carriers_service
    from numberplane.kernel.db import Actor, Database, utcnow
    from numberplane.kernel.ids import new_id
    from numberplane.numbers.models import PhoneNumber, PhoneNumberAgent

    db = Database(url)
    try:
        async with db.uow(Actor.cli()) as uow:
            org, key = await carriers_service.open_org(uow=uow, name="bench")
            await uow.commit()
        agent_id = new_id()
        config = {"connect": {"stream_url": "wss://agents.example.com/bench"}}
        async with db.session() as session:
            session.add(Agent(id=agent_id, org_id=org.id, name="bench agent", version=1, config=config))
            await session.flush()
            session.add(AgentVersion(agent_id=agent_id, version=1, config=config))
            await session.commit()
        started = time.perf_counter()
        now = utcnow()
        first_id = ""
        batch = 20_000
        for start in range(0, count, batch):
            ids = [new_id() for _ in range(start, min(start + batch, count))]
            first_id = first_id or ids[0]
            rows = [
                {
                    "id": ids[i - start],
                    "org_id": org.id,
                    "phone_number": number_at(i),
                    "country": "US",
                    "area_code": number_at(i)[2:5],
                    "number_type": "local",
                    "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
                    "status": "active",
                    "origin": "imported",
                    "carrier": "sandbox",
                    "carrier_account_id": org.default_carrier_account_id,
                    "outbound": False,
                    "meta": {},
                    "extras": {},
                    "created_at": now,
                    "updated_at": now,
                    "last_modification_ms": int(now.timestamp() * 1000),
                }
                for i in range(start, min(start + batch, count))
            ]
            async with db.session() as session:
                await session.execute(insert(PhoneNumber), rows)
                await session.execute(
                    insert(PhoneNumberAgent),
                    [
                        {"phone_number_id": n, "direction": "inbound", "agent_id": agent_id, "weight": 1.0}
                        for n in ids
                    ],
                )
                await session.commit()
            print(f"  loaded {min(start + batch, count):>9,} numbers", end="\r", flush=True)
        print(f"  loaded {count:,} numbers in {time.perf_counter() - started:.1f} s          ")
        return Seed(token=key.token, number_id=first_id, e164=number_at(0))
    finally:
        await db.dispose()


# -- Load ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    rate: float
    p99_ms: float
    cpu_us: float
    errors: str
    writer_cpu_us: float = 0.0  # the server's call-record writer process, per request


# Each request a new call, as a SIP platform's traffic is: a call id no earlier request used.
NEW_CALL_IDS = """
local prefix = "CA" .. tostring(os.time()) .. tostring(math.random(1000000)) .. "x"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, PATH .. prefix .. n)
end
"""


def wrk(name: str, url: str, headers: dict[str, str], args: argparse.Namespace, pid: int) -> Row:
    command = [WRK, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", url]
    if url.endswith("call_id="):  # the rest of the id comes from the script, new per request
        path = "/" + url.split("/", 3)[3]
        script = os.path.join(tempfile.gettempdir(), f"np-bench-call-ids-{os.getpid()}.lua")
        with open(script, "w") as handle:
            handle.write(f"local PATH = {path!r}\n" + NEW_CALL_IDS)
        command[1:1] = ["-s", script]
    for header, value in headers.items():
        command[1:1] = ["-H", f"{header}: {value}"]
    cpu, writer_cpu = cpu_seconds(pid), children_cpu_seconds(pid)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.seconds + 60, preexec_fn=wrk_preexec()
    )
    # The call records written behind the answers count, in time and CPU (bench.routing.drained).
    lag = drain(url.split("/v1/", 1)[0].rstrip("/"))
    cpu = cpu_seconds(pid) - cpu
    writer_cpu = children_cpu_seconds(pid) - writer_cpu
    rate, p99_ms, total, errors, _ = wrk_figures(done.stdout)
    rate = total / (total / rate + lag) if rate else rate
    return Row(name, rate, p99_ms, cpu / max(total, 1) * 1e6, errors, writer_cpu / max(total, 1) * 1e6)


def drain(base: str, limit_s: float = 120.0) -> float:
    """Seconds until the server's call-record queue is empty (its /metrics); 0 for a server that
    keeps none (records off, the bare app, the peer)."""
    started = time.perf_counter()
    waited = False
    while time.perf_counter() - started < limit_s:
        try:
            response = httpx.get(base + "/metrics", timeout=10)
        except httpx.HTTPError:
            return 0.0
        if not (response.status_code == 200 and pending_records(response.text)):
            break
        waited = True
        time.sleep(0.05)
    return time.perf_counter() - started if waited else 0.0


def check(url: str, headers: dict[str, str], expect: bytes) -> None:
    response = httpx.get(url, headers=headers, timeout=10)
    if response.status_code != 200 or expect not in response.content:
        raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")


async def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    from bench.routing import wait_ready

    await wait_ready(port, proc)


def serve(app: str, port: int, env: dict[str, str], factory: bool) -> subprocess.Popen[bytes]:
    proc = start_server(app, port, env, factory)
    asyncio.run(wait_up(port, proc))
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", default="", help="comma-separated target names to run (default all)")
    args = parser.parse_args()
    args.numbers = max(1, min(args.numbers, 1_000_000))

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from numberplane.migrate import upgrade

    tmp = tempfile.TemporaryDirectory(prefix="np-bench-api-")
    pg_url = ""
    if args.db == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    else:
        from tests.support import create_pg_database

        url = pg_url = asyncio.run(create_pg_database(pg_server()))
    print(
        f"bench.api: {args.db}, {args.numbers:,} numbers, wrk -t1 -c{args.connections} -d{args.seconds}s "
        f"({WRK_POLICY}), "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )
    try:
        upgrade(url)
        data = asyncio.run(seed(url, args.numbers))
        port = 19_000 + os.getpid() % 1000
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": url,
            "NUMBERPLANE_PUBLIC_URL": base_url,
            "NUMBERPLANE_LOG_LEVEL": "WARNING",
            "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0",
            # bench/ importable by the servers; a PYTHONPATH given (another tree's src) first.
            "PYTHONPATH": os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), REPO_ROOT))),
        }
        key = {"Authorization": f"Bearer {data.token}"}
        route = f"/v1/route?format=twiml&to=%2B{data.e164[1:]}&call_id="  # a new call id per request
        targets: list[tuple[str, str, str, bool, str, dict[str, str], bytes]] = [
            ("bare", "bench.routing:bare_app", "/", False, "bare ASGI constant answer", {}, b"<Stream"),
            ("healthz", "numberplane.app:create_app", "/healthz", True, "GET /healthz", {}, b"ok"),
            (
                "agents",
                "numberplane.app:create_app",
                "/v1/agents?limit=1",
                True,
                "GET /v1/agents?limit=1 (key)",
                key,
                b"bench agent",
            ),
            (
                "number",
                "numberplane.app:create_app",
                f"/v1/phone-numbers/{data.number_id}",
                True,
                "GET /v1/phone-numbers/{id} (key)",
                key,
                data.e164.encode(),
            ),
            (
                "route",
                "numberplane.app:create_app",
                route,
                True,
                "GET /v1/route twiml (key)",
                key,
                b"<Stream",
            ),
            (
                "route-nocall",
                "numberplane.app:create_app",
                route.removesuffix("&call_id="),
                True,
                "GET /v1/route twiml (key), no call id",
                key,
                b"<Stream",
            ),
            (
                "peer",
                "bench.api:peer_app",
                f"/route?to=%2B{data.e164[1:]}&call_id=CA0",
                True,
                "peer way: FastAPI + 1 query, no key",
                {},
                b"<Stream",
            ),
        ]
        only = set(filter(None, args.only.split(",")))
        rows: dict[str, Row] = {}
        proc: subprocess.Popen[bytes] | None = None
        current = ""
        try:
            for name, app, path, factory, label, headers, expect in targets:
                if only and name not in only:
                    continue
                if app != current:
                    if proc is not None:
                        stop_server(proc)
                    proc, current = serve(app, port, env, factory), app
                assert proc is not None
                check(base_url + path + ("CAcheck" if path.endswith("call_id=") else ""), headers, expect)
                wrk(
                    label,
                    base_url + path,
                    headers,
                    argparse.Namespace(**{**vars(args), "seconds": 1}),
                    proc.pid,
                )
                rows[name] = wrk(label, base_url + path, headers, args, proc.pid)
                r = rows[name]
                print(
                    f"  {r.name:<38} {r.rate:>9,.0f} req/s  p99 {r.p99_ms:7.2f} ms  "
                    f"server CPU {r.cpu_us:6.0f} us/req"
                    + (f" (+ writer {r.writer_cpu_us:.0f})" if r.writer_cpu_us >= 0.5 else "")
                    + f"  {r.errors}",
                    flush=True,
                )
        finally:
            if proc is not None:
                stop_server(proc)
        print(f"  (load average {os.getloadavg()[0]:.2f})")

        def ratio(a: str, b: str, label: str) -> None:
            if a in rows and b in rows:
                print(
                    f"  {label:<44} throughput {rows[a].rate / rows[b].rate:5.2f}x   "
                    f"CPU/request {rows[b].cpu_us / rows[a].cpu_us:5.2f}x"
                )

        print()
        ratio("agents", "healthz", "GET /v1/agents?limit=1 vs /healthz")
        ratio("number", "healthz", "GET /v1/phone-numbers/{id} vs /healthz")
        ratio("route", "bare", "GET /v1/route vs bare ASGI")
        ratio("route", "peer", "GET /v1/route vs the peer way")
        ratio("route-nocall", "bare", "GET /v1/route, no call id vs bare ASGI")
        ratio("route-nocall", "peer", "GET /v1/route, no call id vs the peer way")
        ratio("healthz", "bare", "GET /healthz vs bare ASGI")
    finally:
        if pg_url:
            from tests.support import drop_pg_database

            asyncio.run(drop_pg_database(pg_url))
        tmp.cleanup()


if __name__ == "__main__":
    main()
