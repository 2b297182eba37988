"""Benchmark: the server's instructions per warm carrier decision, counted by callgrind.

    .venv/bin/python -m bench.instructions                    # 10,000 numbers, 4,000 requests a target
    .venv/bin/python -m bench.instructions --requests 8000 --numbers 100000

Why: on this project's VM the same server's CPU a decision moves between 55 and 128 us from one
minute to the next (bench/routing.py's records rounds; the hypervisor's steal, a neighbour's
cache), so a change of a few percent cannot be seen in decisions/s, nor a ratio to the bare app
trusted from one run. ``valgrind --tool=callgrind`` counts the instructions the server process
executes instead: the same count for the same code and input, whatever the machine is doing
(repeated runs agree within 0.3%). It counts user space only: the kernel's share (the socket
reads and writes, ~the same for every target) is not in it.

What it does: a throwaway PostgreSQL database with N numbers (``bench.routing.load``); then,
one target after another, uvicorn as ``numberplane serve`` runs it (uvloop, httptools through
``kernel.serving``'s protocol, one worker) under callgrind with counting off; 2,000 warm-up calls;
counting on (``callgrind_control -i on``) for ``--requests`` Twilio-signed calls to warm numbers
over ``--concurrency`` keep-alive connections, each a new call; the wait for the call records to
be handed to the writer; counting off. Targets: Numberplane without call records, with them,
and the bare ASGI app (``bench.routing.bare_app``: drains the body, answers constant TwiML)
on the same server stack. The call-record writer is a process of its own and not counted: its
CPU is the other core's (bench/routing.py measures it).

Prints instructions a request, each target's ratio to the bare app (what decisions/s would be
were the server's CPU all that counted), and the records' ratio. Needs ``valgrind``
(``apt-get install valgrind``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.routing import (
    Seed,
    closed_loop,
    load,
    number_at,
    pg_server,
    signed_requests,
    start_server,
    stop_server,
    wait_ready,
)

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
CONTROL = shutil.which("callgrind_control") or "/usr/bin/callgrind_control"
READY_S = 300.0  # a server starting under valgrind: imports and the app's startup, ~10x slower


def collected(log: str) -> int:
    """The instructions callgrind counted (its ``Collected :`` line), 0 if it printed none."""
    found = re.search(r"Collected : ([\d,]+)", log)
    return int(found.group(1).replace(",", "")) if found else 0


def counting(pid: int, on: bool) -> None:
    """Turn callgrind's counting on or off in process ``pid`` (it acts on its next basic block)."""
    subprocess.run(
        [CONTROL, "-i", "on" if on else "off", str(pid)], capture_output=True, timeout=60, check=True
    )


async def answered(label: str, port: int, requests: list[bytes], concurrency: int) -> None:
    """``bench.routing.closed_loop`` (which ends when the server's call records are written),
    where every answer must be a stream."""
    result = await closed_loop(label, port, requests, concurrency)
    if result.errors:
        raise RuntimeError(f"{label}: {result.errors} of {result.requests} answers were not a stream")


async def count(
    label: str,
    name: str,
    app: str,
    factory: bool,
    env: dict[str, str],
    port: int,
    warm_up: list[bytes],
    measured: list[bytes],
    args: argparse.Namespace,
    scratch: Path,
) -> float:
    """Instructions a request of one target (a server started for it, then stopped)."""
    log_path = scratch / f"{name}.log"
    callgrind = [
        VALGRIND, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={scratch / name}.out",
        f"--log-file={log_path}",
    ]  # fmt: skip
    proc = start_server(app, port, env, factory, wrapper=callgrind)
    try:
        await wait_ready(port, proc, READY_S)
        await answered(f"{label}, warm-up", port, warm_up, args.concurrency)  # its records: not counted
        started = time.perf_counter()
        counting(proc.pid, True)
        await answered(label, port, measured, args.concurrency)  # its records handed over: counted
        counting(proc.pid, False)
        elapsed = time.perf_counter() - started
    finally:
        stop_server(proc)
    instructions = collected(log_path.read_text())
    if not instructions:
        raise RuntimeError(f"{label}: callgrind counted nothing; see {log_path}")
    per_request = instructions / len(measured)
    print(
        f"  {label:<34} {per_request:>10,.0f} instructions a request  ({elapsed:.0f} s under callgrind)",
        flush=True,
    )
    return per_request


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=4_000, help="counted requests a target")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--only",
        choices=("bare", "off", "on"),
        action="append",
        help="count these targets alone (repeatable)",
    )
    args = parser.parse_args()
    args.numbers = max(2_000, args.numbers)

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from tests.support import create_pg_database, drop_pg_database

    from numberplane.migrate import upgrade

    url = await create_pg_database(pg_server())
    scratch = tempfile.TemporaryDirectory(prefix="np-bench-instructions-")
    try:
        await asyncio.to_thread(upgrade, url)
        seed: Seed = await load(url, args.numbers)
        port = 19_000 + os.getpid() % 1000
        public = f"http://127.0.0.1:{port}"
        warm = [number_at(i) for i in range(2_000)]
        calls = [warm[i % len(warm)] for i in range(args.requests)]
        env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": url,
            "NUMBERPLANE_PUBLIC_URL": public,
            "NUMBERPLANE_LOG_LEVEL": "WARNING",
            "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0",
        }
        print(
            f"{args.numbers:,} numbers on PostgreSQL; {args.requests:,} warm calls a target over "
            f"{args.concurrency} connections; the server process's user-space instructions (callgrind)"
        )
        figures: dict[str, float] = {}
        numberplane = "numberplane.app:create_app"
        targets: list[tuple[str, str, str, bool, dict[str, str]]] = [
            ("bare", "bare ASGI app", "bench.routing:bare_app", False, {}),
            ("off", "numberplane, records off", numberplane, True, {"NUMBERPLANE_CALL_RECORDS": "0"}),
            ("on", "numberplane, records on", numberplane, True, {"NUMBERPLANE_CALL_RECORDS": "1"}),
        ]
        for tag, (name, label, app, factory, extra) in enumerate(targets, start=0x60):
            if args.only and name not in args.only:
                continue
            warm_up = signed_requests(seed, public, warm, tag=2 * tag)
            measured = signed_requests(seed, public, calls, tag=2 * tag + 1)  # every one a new call
            figures[name] = await count(
                label,
                name,
                app,
                factory,
                {**env, **extra},
                port,
                warm_up,
                measured,
                args,
                Path(scratch.name),
            )
        bare, off, on = (figures.get(name) for name in ("bare", "off", "on"))
        print()
        for name, figure in (("off", off), ("on", on)):
            if bare and figure:
                print(f"  bare / numberplane (records {name}): {bare / figure:.2f}x")
        if off and on:
            print(
                f"  records on / off: {off / on:.2f}x (the instructions' ratio: what decisions/s with "
                "records would be against without, were the server's CPU all that counted)"
            )
    finally:
        scratch.cleanup()
        await drop_pg_database(url)


if __name__ == "__main__":
    if not os.path.exists(VALGRIND):
        sys.exit(f"{VALGRIND} is not installed (apt-get install valgrind)")
    asyncio.run(main())
