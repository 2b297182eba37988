"""Benchmark: latency at a steady call rate on PostgreSQL, carrier path and ``/v1/route``.

    .venv/bin/python -m bench.steady                              # 1,000,000 numbers, 1,000 calls/s
    .venv/bin/python -m bench.steady --numbers 100000 --seconds 5 # quicker
    .venv/bin/python -m bench.steady --real-traffic               # as real calls come

``--real-traffic``: every call from a caller of its own (the server reads each afresh), and the
carrier requests with all 27 parameters Twilio sends (``bench.routing.twilio_extras``); without
it, the 9 parameters routing reads, every call from one caller, as the earlier rounds measured.

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
server (and here with other work): the load average is printed with the figures, and under each
phase the CPU each process spent per call (the server, its call-record writer, PostgreSQL, the
load generator). A cold call costs the machine several times a warm one, spread over four
processes on the same cores; their turns waiting for each other are most of the cold p99.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random

from bench.routing import (
    CALLER,
    REPO_ROOT,
    Seed,
    call_id,
    caller_at,
    children_cpu_seconds,
    closed_loop,
    cpu_seconds,
    number_at,
    open_loop,
    postgres_cpu_seconds,
    signed_requests,
    start_server,
    stolen_seconds,
    stop_server,
    wait_ready,
)

TARGET_P99_MS = 5.0


def machine_cpu(server_pid: int) -> tuple[float, float, float, float, float]:
    """(server, its call-record writer, PostgreSQL, this load generator, stolen) CPU seconds so far."""
    return (
        cpu_seconds(server_pid),
        children_cpu_seconds(server_pid),
        postgres_cpu_seconds(),
        cpu_seconds(os.getpid()),
        stolen_seconds(),
    )


def cpu_line(before: tuple[float, ...], after: tuple[float, ...], calls: int) -> str:
    """Where the machine's CPU went per call in a phase: at a steady rate the p99 is mostly
    these processes waiting for each other's turn on the same cores. And what the hypervisor
    took from the VM in the phase: of four runs one after another, two had a cold phase's max
    at 32-52 ms (p99 6.2-37.8 ms) and two at 7.3-8.6 ms (p99 3.2-3.8 ms); a phase's steal says
    whether the machine, not only the server, was short of time."""
    *per_call, stolen = (b - a for a, b in zip(before, after, strict=True))
    server, writer, postgres, loadgen = (1e6 * seconds / calls for seconds in per_call)
    return (
        f"    CPU per call: server {server:.0f} us, its writer {writer:.0f} us, "
        f"PostgreSQL {postgres:.0f} us, load generator {loadgen:.0f} us ({os.cpu_count()} cores); "
        f"stolen by the hypervisor {stolen * 1000:.0f} ms"
    )


def route_requests(
    seed: Seed, base: str, numbers: list[str], tag: int = 0, *, new_callers: bool = False
) -> list[bytes]:
    """``GET /v1/route`` with the org's key, one per number; ``tag`` keeps call ids apart between
    phases (``call_id``), and ``new_callers`` gives each call a caller of its own, as in
    ``signed_requests``."""
    host = base.split("//", 1)[1]
    out = []
    for i, to in enumerate(numbers):
        caller = caller_at(tag * 1_000_000 + i) if new_callers else CALLER
        head = (
            f"GET /v1/route?format=twiml&to=%2B{to[1:]}&from=%2B{caller[1:]}&call_id={call_id(tag, i)}"
            " HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {seed.token}\r\n\r\n"
        )
        out.append(head.encode())
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each steady phase")
    parser.add_argument(
        "--real-traffic",
        action="store_true",
        help="each call from a caller of its own, carrier requests with all 27 parameters Twilio sends",
    )
    args = parser.parse_args()
    args.numbers = max(10_000, min(args.numbers, 8_000_000))

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from tests.support import create_pg_database, drop_pg_database

    from bench.routing import explain, load, pg_server
    from numberplane.migrate import upgrade

    url = await create_pg_database(pg_server())
    print(
        f"bench.steady: PostgreSQL, {args.numbers:,} numbers, {args.rate:.0f} calls/s for "
        f"{args.seconds:.0f} s per phase{', real traffic' if args.real_traffic else ''}; "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
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
        # Every request a new call (its own call id), as a carrier's would be: a call id seen
        # before makes the call record an update of that call, dearer to write than a new one.
        real: bool = args.real_traffic

        def voice(numbers: list[str], tag: int) -> list[bytes]:
            return signed_requests(seed, public, numbers, tag, new_callers=real, full=real)

        def route(numbers: list[str], tag: int) -> list[bytes]:
            return route_requests(seed, public, numbers, tag, new_callers=real)

        voice_warm_up, voice_warm, voice_cold = (
            voice(warm_voice, 1),
            voice(warm_voice, 2),
            voice(cold_voice, 3),
        )
        route_warm_up, route_warm, route_cold = (
            route(warm_route, 4),
            route(warm_route, 5),
            route(cold_route, 6),
        )
        gc.collect()
        gc.freeze()
        proc = start_server("numberplane.app:create_app", port, env, factory=True)
        results = []
        try:
            await wait_ready(port, proc)
            # Warm the caches (and the key cache) with the warm sets, closed loop.
            await closed_loop("warm-up", port, voice_warm_up, 16)
            await closed_loop("warm-up", port, route_warm_up, 16)
            for name, requests in (
                ("/voice/twilio warm", voice_warm),
                ("/voice/twilio cold", voice_cold),
                ("/v1/route warm", route_warm),
                ("/v1/route cold", route_cold),
            ):
                before = machine_cpu(proc.pid)
                result = await open_loop(f"{name} {args.rate:.0f}/s", port, requests, args.rate)
                await asyncio.sleep(1.0)  # the phase's last call records written, counted here
                results.append(result)
                print(result.line(), f"  (load average {os.getloadavg()[0]:.2f})")
                print(cpu_line(before, machine_cpu(proc.pid), len(requests)), flush=True)
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
