"""Benchmark: latency at a steady call rate on PostgreSQL, carrier path and ``/v1/route``.

    .venv/bin/python -m bench.steady                              # 1,000,000 numbers, 1,000 calls/s
    .venv/bin/python -m bench.steady --numbers 100000 --seconds 5 # quicker

A paced (open-loop) load generator: request i is *scheduled* at ``start + i / rate`` and its
latency counts from that time, so a stall that delays later requests shows in their latency
(no coordinated omission; wrk2 would do the same, it is not installed here). Raw HTTP/1.1 over
keep-alive asyncio connections from a pool (``bench.routing.open_loop``).

Phases, one server (uvicorn, uvloop, httptools, one worker), one run:

- ``/voice/twilio`` warm: numbers already in the route cache; cold: numbers never asked before
  (each a cache miss: one indexed query);
- ``GET /v1/route?format=twiml`` with the org's key, warm and cold the same way;
- the floor: a bare ASGI app on the same stack answering a constant, paced the same way (what
  the machine alone adds to p99 at that moment).

Every answer is checked (200 and a ``<Stream``). The load generator shares the machine with the
server (and here with other work): the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random

from bench.routing import (
    REPO_ROOT,
    Seed,
    closed_loop,
    number_at,
    open_loop,
    signed_requests,
    start_server,
    stop_server,
    wait_ready,
)

TARGET_P99_MS = 5.0


def route_requests(seed: Seed, base: str, numbers: list[str]) -> list[bytes]:
    host = base.split("//", 1)[1]
    out = []
    for i, to in enumerate(numbers):
        head = (
            f"GET /v1/route?format=twiml&to=%2B{to[1:]}&from=%2B12125550123&call_id=CA{i:032x} HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {seed.token}\r\n\r\n"
        )
        out.append(head.encode())
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each steady phase")
    args = parser.parse_args()
    args.numbers = max(10_000, min(args.numbers, 8_000_000))

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from tests.support import create_pg_database, drop_pg_database

    from bench.routing import explain, load
    from numberplane.migrate import upgrade

    base = os.environ.get(
        "NUMBERPLANE_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ).replace("postgresql://", "postgresql+asyncpg://", 1)
    os.environ.setdefault("NUMBERPLANE_TEST_DATABASE_URL", base)
    url = await create_pg_database(base)
    print(
        f"bench.steady: PostgreSQL, {args.numbers:,} numbers, {args.rate:.0f} calls/s for "
        f"{args.seconds:.0f} s per phase; cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )
    try:
        await asyncio.to_thread(upgrade, url)
        seed = await load(url, args.numbers)
        await explain(url)
        per_phase = int(args.rate * args.seconds)
        from numberplane.kernel.e164 import normalize_address

        rng = random.Random(11)
        picked = [
            n
            for n in (number_at(i) for i in rng.sample(range(args.numbers), min(args.numbers, 5 * per_phase)))
            if normalize_address(n) == n
        ]
        if len(picked) < 4 * per_phase:
            raise SystemExit(f"--numbers {args.numbers:,} is too few for 4 phases of {per_phase:,} calls")
        warm_voice, cold_voice, warm_route, cold_route = (
            picked[:per_phase],
            picked[per_phase : 2 * per_phase],
            picked[2 * per_phase : 3 * per_phase],
            picked[3 * per_phase : 4 * per_phase],
        )
        port = 20_000 + os.getpid() % 1000
        public = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": url,
            "NUMBERPLANE_PUBLIC_URL": public,
            "NUMBERPLANE_LOG_LEVEL": "WARNING",
            "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0",
        }
        voice_warm = signed_requests(seed, public, warm_voice)
        voice_cold = signed_requests(seed, public, cold_voice)
        route_warm = route_requests(seed, public, warm_route)
        route_cold = route_requests(seed, public, cold_route)
        gc.collect()
        gc.freeze()
        proc = start_server("numberplane.app:create_app", port, env, factory=True)
        results = []
        try:
            await wait_ready(port, proc)
            # Warm the caches (and the key cache) with the warm sets, closed loop.
            await closed_loop("warm-up", port, voice_warm, 16)
            await closed_loop("warm-up", port, route_warm, 16)
            for name, requests in (
                ("/voice/twilio warm", voice_warm),
                ("/voice/twilio cold", voice_cold),
                ("/v1/route warm", route_warm),
                ("/v1/route cold", route_cold),
            ):
                result = await open_loop(f"{name} {args.rate:.0f}/s", port, requests, args.rate)
                results.append(result)
                print(result.line(), f"  (load average {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            stop_server(proc)
        # The floor: the same server stack answering a constant, paced the same way.
        bare_env = {**env, "PYTHONPATH": REPO_ROOT}
        proc = start_server("bench.routing:bare_app", port, bare_env, factory=False)
        try:
            await wait_ready(port, proc)
            result = await open_loop(f"bare ASGI {args.rate:.0f}/s (floor)", port, voice_warm, args.rate)
            print(result.line(), f"  (load average {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            stop_server(proc)
        print()
        for result in results:
            p99 = result.pct(99)
            verdict = "holds" if p99 <= TARGET_P99_MS and not result.errors else "does not hold"
            print(f"  {result.name:<34} p99 {p99:6.2f} ms: p99 <= {TARGET_P99_MS:.0f} ms {verdict}")
    finally:
        await drop_pg_database(url)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
