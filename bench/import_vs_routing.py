"""Benchmark: routing latency on a server while another org imports 100,000 rows.

    .venv/bin/python -m bench.import_vs_routing                  # SQLite (a temp file)
    NUMBERPLANE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m bench.import_vs_routing --db postgresql

One real server (uvicorn in its own process, as ``numberplane serve`` runs it). Org A's number
is routed through ``GET /v1/route`` at a steady rate from this process, on a keep-alive
connection, while org B posts one 100,000-row import to the same server. Prints routing p50,
p99 and max latency before and during the import, and the import's duration. Target (issue
10): during the import p99 <= 50 ms and max <= 300 ms. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time

import httpx
from cryptography.fernet import Fernet

os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())

from tests.support import ServerProcess, create_pg_database, drop_pg_database, pg_base_url

from numberplane.carriers import service as carriers_service
from numberplane.kernel.db import Actor, Database
from numberplane.migrate import upgrade

EXTRA_ENV = dict(item.split("=", 1) for item in os.environ.get("BENCH_SERVER_ENV", "").split(",") if item)


def numbers(count: int) -> list[str]:
    out = []
    for area in ["212", "213", "303", "312", "404", "415", "512", "617", "646", "702", "713", "818"]:
        for line in range(10_000):
            out.append(f"+1{area}234{line:04d}")
            if len(out) == count:
                return out
    raise ValueError("too many")


async def make_org(url: str, name: str) -> dict[str, str]:
    db = Database(url)
    async with db.uow(Actor.cli()) as uow:
        _, key = await carriers_service.open_org(uow=uow, name=name)
        await uow.commit()
    await db.dispose()
    return {"Authorization": f"Bearer {key.token}"}


def figures(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(ordered):,} p50={statistics.median(ordered):.1f} ms "
        f"p99={p99:.1f} ms max={ordered[-1]:.1f} ms"
    )


async def route_loop(
    client: httpx.AsyncClient, headers: dict[str, str], to: str, rate: float, stop: asyncio.Event
) -> list[float]:
    samples: list[float] = []
    interval = 1.0 / rate
    next_at = time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/v1/route", params={"to": to}, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return samples


async def run(url: str, rows: int, rate: float) -> None:
    routed = await make_org(url, "routed")
    importer = await make_org(url, "importer")
    server = ServerProcess(url, env={"NUMBERPLANE_LOG_LEVEL": "WARNING", **EXTRA_ENV})
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            connect = {"sip_uri": "sip:agent@sip.example.com"}
            agent = (
                await client.post("/v1/agents", json={"name": "Bench", "connect": connect}, headers=routed)
            ).json()
            line = "+13125550123"
            body = {"numbers": [{"phone_number": line, "inbound_agents": [{"agent_id": agent["id"]}]}]}
            done = await client.post("/v1/phone-numbers/import", json=body, headers=routed)
            assert done.json()["created"] == 1, done.text
            first = await client.get("/v1/route", params={"to": line}, headers=routed)
            print(f"  route answer: {first.headers.get('x-numberplane-outcome')}")

            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(3.0, stop.set)
            idle = await route_loop(client, routed, line, rate, stop)
            print(f"  routing, idle:            {figures(idle)}")

            payload = json.dumps(
                {"numbers": [{"phone_number": n, "name": "x"} for n in numbers(rows)]}
            ).encode()
            result: dict[str, object] = {}

            def post_import() -> None:  # a thread: encoding and sending never block this loop
                started = time.perf_counter()
                response = httpx.post(
                    server.url + "/v1/phone-numbers/import",
                    content=payload,
                    headers={**importer, "content-type": "application/json"},
                    timeout=900,
                )
                result["seconds"] = time.perf_counter() - started
                result["status"] = response.status_code
                result["created"] = response.json().get("created") if response.status_code == 200 else None

            stop = asyncio.Event()
            worker = threading.Thread(target=post_import)
            worker.start()
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, worker.join).add_done_callback(lambda _: stop.set())
            busy = await route_loop(client, routed, line, rate, stop)
            print(f"  routing, during import:   {figures(busy)}")
            print(
                f"  import: {rows:,} rows ({len(payload) / 1e6:.1f} MB) in {result.get('seconds', 0):.1f} s, "
                f"status {result.get('status')}, created {result.get('created')}"
            )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=50.0, help="routing requests per second")
    args = parser.parse_args()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            print(f"SQLite, {args.rows:,} rows, routing at {args.rate:g}/s")
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            upgrade(url)
            asyncio.run(run(url, args.rows, args.rate))
        return
    base = pg_base_url()
    if base is None:
        raise SystemExit("set NUMBERPLANE_TEST_DATABASE_URL to a PostgreSQL server")
    url = asyncio.run(create_pg_database(base))
    upgrade(url)
    try:
        print(f"PostgreSQL, {args.rows:,} rows, routing at {args.rate:g}/s")
        asyncio.run(run(url, args.rows, args.rate))
    finally:
        asyncio.run(drop_pg_database(url))


if __name__ == "__main__":
    main()
