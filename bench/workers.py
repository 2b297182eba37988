"""Benchmark: ``numberplane serve --workers N`` on PostgreSQL: decisions/s with 1 and 2 workers,
and every worker's cache right after a change.

    .venv/bin/python -m bench.workers                       # 100,000 numbers, 10 s per run
    .venv/bin/python -m bench.workers --numbers 20000 --seconds 5
    .venv/bin/python -m bench.workers --records off        # the routing decisions alone

In one run: load N numbers (COPY), then, ``--rounds`` times (default 3), for 1 and for 2
workers (alternating which goes first, so a drift in the machine's speed falls on both) start
the real command (``python -m numberplane serve --workers N``), warm every worker's cache, and
load it with
``wrk`` (C, one thread, so the load generator takes little of the machine; a Lua script sends
Twilio-signed POSTs to ``/voice/twilio``, each a new call, as real traffic is: a call id sent
again is a second decision for a call already recorded, which the writers merge, a costlier path
than a new call's). Prints decisions/s, p99, the server processes' CPU per decision, how much of
the machine was busy during the run, each round's 2:1 ratio and their median (one run's ratio
moved between 1.3x and 1.9x on this VM within an hour). Then, in the last round, with 2
workers, it changes the agent every number routes to (a unit of work in this process, like any
writer) and asks on fresh connections — which the kernel spreads over both workers — until every
answer carries the new stream URL, and prints how long that took (each worker hears the change
through LISTEN/NOTIFY).

``--records both`` (the default) measures without call records (the routing decisions alone)
and then with them, each run with calls of its own.

Each run prints the servers' CPU a decision and, while they are under load (``LoadWindow``),
the machine's busy cores and the CPU a decision spent outside the servers: wrk, the kernel's
loopback TCP, PostgreSQL. On 2 cores the load generator shares the servers' cores, so with the
machine full the ratio is about 2 S / (S + R), S the servers' CPU a decision and R the rest:
the cheaper a decision, the less a second worker can add here. Each round also prints what the
servers' own CPU a decision would allow with the load generator and PostgreSQL on other
machines (2 cores over S with 2 workers, against the 1-worker rate): with records on, where
PostgreSQL does a share of every call, that says less.

The machine's other load counts against it: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.routing import (
    Connection,
    LoadWindow,
    Seed,
    lua_script,
    number_at,
    run_wrk,
    signed_requests,
    tree_cpu,
)

# wrk's scheduling policy here (bench.routing.sched_batch): ``normal`` unless
# NUMBERPLANE_BENCH_WRK_POLICY says otherwise. With a server on every core, a SCHED_BATCH wrk
# waits for a slice's end to send more, and the servers wait for it: 2 workers kept 1.54-1.60 of
# the 2 cores busy (read over the whole wrk command, its script's reading included) and the
# median ratio was 1.36x (1.14, 1.36, 1.37); the earlier runs with wrk at the normal policy kept
# 1.63-1.70 busy, medians 1.40-1.77x.
WRK_POLICY = os.environ.get("NUMBERPLANE_BENCH_WRK_POLICY", "normal")


def serve(workers: int, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "numberplane", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def coherence(url: str, port: int, seed: Seed, request: bytes) -> float:
    """Seconds from a committed agent change until fresh connections all see it (bounded: 10 s)."""
    from sqlalchemy import select

    from numberplane.agents import service as agents_service
    from numberplane.agents.models import Agent
    from numberplane.agents.schemas import AgentUpdate
    from numberplane.kernel.db import Actor, Database

    db = Database(url)
    try:
        async with db.session() as session:
            agent_id = (await session.scalars(select(Agent.id).where(Agent.org_id == seed.org_id))).one()
        new_url = f"wss://agents.example.com/changed-{int(time.time())}"
        async with db.uow(Actor.cli(seed.org_id)) as uow:
            await agents_service.update_in(uow, agent_id, AgentUpdate(connect={"stream_url": new_url}))
            await uow.commit()
        changed = time.perf_counter()
        while time.perf_counter() - changed < 10:
            seen = []
            for _ in range(16):  # fresh connections land on either worker
                conn = await Connection.open(port)
                try:
                    seen.append(new_url.encode() in (await conn.send(request))[1])
                finally:
                    conn.close()
            if all(seen):
                return time.perf_counter() - changed
            await asyncio.sleep(0.01)
        return float("inf")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads")
    parser.add_argument("--rounds", type=int, default=3, help="1- and 2-worker runs, alternating")
    parser.add_argument(
        "--records",
        choices=("both", "off", "on"),
        default="both",
        help="call records off, on, or both in turn",
    )
    args = parser.parse_args()
    args.numbers = max(5_000, min(args.numbers, 8_000_000))

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from tests.support import create_pg_database, drop_pg_database

    from bench.routing import load, pg_server
    from numberplane.migrate import upgrade

    url = asyncio.run(create_pg_database(pg_server()))
    print(
        f"bench.workers: PostgreSQL, {args.numbers:,} numbers, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.seconds}s ({WRK_POLICY}); cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )
    tmp = tempfile.TemporaryDirectory(prefix="np-bench-workers-")
    try:
        upgrade(url)
        seed = asyncio.run(load(url, args.numbers))
        port = 21_000 + os.getpid() % 1000
        public = f"http://127.0.0.1:{port}"
        numbers = [number_at(i) for i in range(0, args.numbers, max(1, args.numbers // 2000))][:2000]
        requests = signed_requests(seed, public, numbers)  # the warm-up's: the numbers once each
        warm = Path(tmp.name) / "warm.lua"
        lua_script(requests, warm)
        # Each measured run its own calls, more than it can send (~30,000 calls/s at most here);
        # its script is written just before it runs and removed after (~150 MB each).
        calls = numbers * max(1, args.seconds * 40_000 // len(numbers))
        modes = {"both": ("off", "on"), "off": ("off",), "on": ("on",)}[args.records]
        env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": url,
            "NUMBERPLANE_PUBLIC_URL": public,
            "NUMBERPLANE_LOG_LEVEL": "WARNING",
            "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0",
        }
        summary = []
        tags = itertools.count(1)
        for mode in modes:
            print(f"  call records {mode}:")
            ratios: list[float] = []
            alone: list[float] = []
            full: list[float] = []
            for round_ in range(args.rounds):
                rates: dict[int, float] = {}
                server_us: dict[int, float] = {}
                # 1 then 2 workers, then 2 then 1: a drift in the machine's speed over the
                # rounds falls on both sides.
                for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
                    script = Path(tmp.name) / "calls.lua"
                    lua_script(signed_requests(seed, public, calls, tag=next(tags)), script)
                    proc = serve(
                        workers, port, {**env, "NUMBERPLANE_CALL_RECORDS": "1" if mode == "on" else "0"}
                    )
                    try:
                        wait_up(port, proc)
                        # every worker's cache warm
                        run_wrk(port, warm, 3, args.connections, args.threads, WRK_POLICY)
                        cpu = tree_cpu(proc.pid)
                        with LoadWindow(proc.pid) as window:
                            rate, p99, total, errors, _ = run_wrk(
                                port, script, args.seconds, args.connections, args.threads, WRK_POLICY
                            )
                        span_s, busy, servers_s = window.span()
                        if total > len(calls):
                            errors += f" ({total - len(calls):,} calls sent twice)"
                        server_us[workers] = (tree_cpu(proc.pid) - cpu) / max(total, 1) * 1e6
                        rest_us = (busy * span_s - servers_s) / max(rate * span_s, 1) * 1e6
                        rates[workers] = rate
                        if workers == 2:
                            full.append(busy)
                        print(
                            f"    --workers {workers}: {rate:>9,.0f} decisions/s  p99 {p99:7.2f} ms  "
                            f"server CPU {server_us[workers]:3.0f} us/decision; under load the machine "
                            f"busy {busy:.2f} of {os.cpu_count()} cores, {rest_us:3.0f} us a decision "
                            f"outside the servers  {errors}  (load average {os.getloadavg()[0]:.2f})",
                            flush=True,
                        )
                        if workers == 2 and mode == modes[-1] and round_ == args.rounds - 1:
                            took = asyncio.run(coherence(url, port, seed, requests[0]))
                            print(f"    an agent change reached every worker's cache in {took * 1000:.0f} ms")
                    finally:
                        stop(proc)
                        script.unlink()
                ratios.append(rates[2] / rates[1])
                # What the machine's cores give 2 workers at their own CPU a decision, with the
                # load generator, the loopback's kernel work and PostgreSQL on other machines.
                alone.append(
                    (os.cpu_count() or 1) / (server_us[2] * 1e-6) / rates[1] if server_us[2] else float("nan")
                )  # nan where /proc gave no CPU times
                print(
                    f"    round {round_ + 1}: 2 workers / 1 worker {ratios[-1]:.2f}x "
                    f"(the servers' CPU alone would allow {alone[-1]:.2f}x)"
                )
            each = ", ".join(f"{r:.2f}" for r in ratios)
            summary.append(
                f"  call records {mode}: 2 workers / 1 worker, decisions/s: median "
                f"{statistics.median(ratios):.2f}x over {len(ratios)} rounds ({each}), the 2-worker runs "
                f"keeping {statistics.median(full):.2f} of {os.cpu_count()} cores busy; with the load "
                f"and PostgreSQL on other machines, the servers' CPU a decision would allow "
                f"{statistics.median(alone):.2f}x"
            )
        print()
        print("\n".join(summary))
    finally:
        asyncio.run(drop_pg_database(url))
        tmp.cleanup()


if __name__ == "__main__":
    main()
