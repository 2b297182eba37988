"""Benchmark: the call log and a number's stats over many calls in PostgreSQL.

    .venv/bin/python -m bench.calls                      # 1,000,000 calls over 30 days
    .venv/bin/python -m bench.calls --calls 200000       # quicker
    NUMBERPLANE_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres  (the default)

Creates a throwaway database, migrates it (calls partitioned by month), makes one org with
``--numbers`` numbers and COPYs ``--calls`` call records spread over the last 30 days: one busy
number takes ``--hot`` of them, the rest are spread evenly. Then times, through the service
functions the API calls (``calls.reading``), each repeated ``--repeat`` times:

* ``GET /v1/calls`` first page (50, newest first), a page deep in the keyset, and filtered pages
  (by number, by status);
* ``GET /v1/phone-numbers/{ref}/stats?window=30d|7d|24h`` for the busy number and a typical one.

Prints p50/p99/max per query and the plans of the two main queries. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any


def uuid7_at(ms: int, rand: random.Random) -> str:
    value = (
        (ms & 0xFFFFFFFFFFFF) << 80
        | 0x7 << 76
        | rand.getrandbits(12) << 64
        | 0x2 << 62
        | rand.getrandbits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


async def load(url: str, *, calls: int, numbers: int, hot: float, shuffled: bool) -> tuple[str, list[Any]]:
    import asyncpg
    from sqlalchemy.engine import make_url

    from numberplane.calls import partitions
    from numberplane.carriers import service as carriers_service
    from numberplane.kernel.db import Actor, Database, utcnow
    from numberplane.kernel.ids import new_id
    from numberplane.numbers.models import PhoneNumber

    db = Database(url)
    async with db.uow(Actor.cli()) as uow:
        org, _ = await carriers_service.open_org(uow=uow, name="bench")
        await uow.commit()
    rows = [
        PhoneNumber(
            id=new_id(),
            org_id=org.id,
            phone_number=f"+1415{200 + i // 10_000:03d}{i % 10_000:04d}",
            country="US",
            status="active",
            carrier="sip",
        )
        for i in range(numbers)
    ]
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()
    now = utcnow()
    await partitions.ensure(db, now=now - dt.timedelta(days=31), ahead=2)
    await db.dispose()

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    rand = random.Random(11)
    agent = new_id()
    trace = json.dumps(
        [
            {"step": "number", "result": "active", "detail": "+14152000000 found and active"},
            {"step": "country", "result": "skipped", "detail": "no allowed_inbound_countries"},
            {"step": "webhook", "result": "not_configured", "detail": "no inbound_webhook_url"},
            {
                "step": "agent",
                "result": "picked",
                "detail": f"agent {agent} v1, the number's only connectable agent",
            },
        ]
    )
    webhook = json.dumps(
        {"asked": False, "status": "not_configured", "latency_ms": None, "overrode_agent": False}
    )
    columns = [
        "id", "org_id", "phone_number_id", "phone_number", "from_number", "direction", "carrier",
        "carrier_call_id", "status", "outcome", "reason", "agent_id", "agent_version", "webhook",
        "decision_ms", "trace", "started_at", "answered_at", "ended_at", "duration_s", "created_at",
        "updated_at",
    ]  # fmt: skip
    span_ms = 30 * 86_400_000
    end_ms = int(now.timestamp() * 1000)
    # The recorder writes calls as they happen, so rows land in the table (and on the heap pages an
    # index-only scan checks in the visibility map) in started_at order; --shuffled loads them in
    # random order instead, the worst case for those visibility-map lookups.
    stamps = [end_ms - rand.randrange(span_ms) for _ in range(calls)]
    if not shuffled:
        stamps.sort()
    started = time.perf_counter()
    batch = 50_000
    for start in range(0, calls, batch):
        records = []
        for i in range(start, min(start + batch, calls)):
            pn = rows[0] if rand.random() < hot else rows[1 + rand.randrange(numbers - 1)]
            ms = stamps[i]
            at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
            roll = rand.random()
            if roll < 0.7:
                status, duration = "completed", rand.randrange(1, 600)
                answered, ended = at + dt.timedelta(seconds=2), at + dt.timedelta(seconds=2 + duration)
            elif roll < 0.9:
                status, duration, answered, ended = "no_answer", 0, None, at + dt.timedelta(seconds=30)
            else:
                status, duration, answered, ended = "busy", 0, None, at + dt.timedelta(seconds=3)
            outcome = "agent_stream" if roll < 0.95 else ("fallback_number" if roll < 0.98 else "rejected")
            records.append(
                (
                    uuid7_at(ms, rand), org.id, pn.id, pn.phone_number, "+12125550123", "inbound", "twilio",
                    f"CA{i:032x}", status, outcome, "agent", agent, 1, webhook,
                    round(rand.lognormvariate(0.0, 0.5), 3), trace, at, answered, ended, duration, at, ended,
                )
            )  # fmt: skip
        await conn.copy_records_to_table("calls", records=records, columns=columns)
        print(f"  loaded {min(start + batch, calls):>9,} calls", end="\r", flush=True)
    await conn.execute("VACUUM ANALYZE calls")
    await conn.execute("CHECKPOINT")
    counts = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, count(*) FROM calls GROUP BY 1 ORDER BY 1"
    )
    await conn.close()
    print(f"  loaded {calls:,} calls in {time.perf_counter() - started:.1f} s: " + ", ".join(
        f"{r['part']} {r['count']:,}" for r in counts
    ))  # fmt: skip
    return org.id, rows


async def timed(name: str, repeat: int, fn: Callable[[], Awaitable[Any]]) -> None:
    await fn()  # warm: plans cached, pages in memory
    took = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        took.append((time.perf_counter() - t0) * 1000)
    took.sort()
    p50, p99 = took[len(took) // 2], took[min(len(took) - 1, int(0.99 * len(took)))]
    print(f"  {name:<48} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {took[-1]:7.2f} ms", flush=True)


async def plans(url: str, org_id: str, number_id: str) -> None:
    import asyncpg
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
    from sqlalchemy.engine import make_url

    from numberplane.calls import reading
    from numberplane.kernel.db import utcnow

    conn = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    until = utcnow()
    stats = reading.stats_select(
        dialect="postgresql",
        scope=reading.stats_scope(
            org_id=org_id, number_id=number_id, since=until - reading.WINDOWS["30d"], until=until
        ),
    ).compile(dialect=pg_asyncpg.dialect(), compile_kwargs={"render_postcompile": True})
    for title, sql, params in (
        ("list page", f"SELECT * FROM calls WHERE org_id = '{org_id}' ORDER BY id DESC LIMIT 51", []),
        (
            "30-day stats (the statement number_stats runs)",
            str(stats),
            [stats.params[name] for name in stats.positiontup or ()],
        ),
    ):
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) " + sql, *params)
        print(f"  plan, {title}:")
        for row in rows[:16]:
            print("    " + row[0].strip())
    await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--numbers", type=int, default=1_000)
    parser.add_argument("--hot", type=float, default=0.05, help="share of the calls to the busy number")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--shuffled", action="store_true", help="load calls in random time order")
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
    from tests.support import create_pg_database, drop_pg_database

    from bench.routing import pg_server
    from numberplane.calls import reading
    from numberplane.calls.schemas import CallFilters
    from numberplane.kernel.db import Database
    from numberplane.migrate import upgrade

    url = await create_pg_database(pg_server())
    print(f"database: {url.rsplit('/', 1)[1]}  calls: {args.calls:,}  numbers: {args.numbers:,}  "
          f"busy number: {args.hot:.0%}  {'shuffled' if args.shuffled else 'in time order'}\n"
          f"load average: {os.getloadavg()[0]:.2f}")  # fmt: skip
    try:
        await asyncio.to_thread(upgrade, url)
        org_id, numbers = await load(
            url, calls=args.calls, numbers=args.numbers, hot=args.hot, shuffled=args.shuffled
        )
        db = Database(url)
        busy, typical = numbers[0], numbers[len(numbers) // 2]
        deep_cursor: list[str | None] = [None]

        async def walk() -> None:
            cursor = None
            for _ in range(20):
                page = await reading.list_calls(db=db, org_id=org_id, limit=50, cursor=cursor)
                cursor = page.next_cursor
            deep_cursor[0] = cursor

        await walk()

        def page(**filters: Any) -> Callable[[], Awaitable[Any]]:
            return lambda: reading.list_calls(db=db, org_id=org_id, filters=CallFilters(**filters), limit=50)

        await timed("list: first page (50)", args.repeat, page())
        await timed(
            "list: page 21 (keyset cursor)",
            args.repeat,
            lambda: reading.list_calls(db=db, org_id=org_id, limit=50, cursor=deep_cursor[0]),
        )
        await timed("list: busy number's calls", args.repeat, page(phone_number=busy.phone_number))
        await timed("list: a typical number's calls (by id)", args.repeat, page(phone_number_id=typical.id))
        await timed(
            "list: a typical number's calls (by E.164)", args.repeat, page(phone_number=typical.phone_number)
        )
        await timed("list: status=no_answer,busy", args.repeat, page(status="no_answer,busy"))
        for who, pn in (("busy", busy), ("typical", typical)):
            for window in ("30d", "7d", "24h"):
                await timed(
                    f"stats {window}: {who} number",
                    args.repeat,
                    functools.partial(reading.number_stats, db=db, org_id=org_id, ref=pn.id, window=window),
                )
        stats = await reading.number_stats(db=db, org_id=org_id, ref=busy.id, window="30d")
        print(f"  (busy number, 30d: {stats.calls:,} calls, answer rate {stats.answer_rate}, "
              f"p99 decision {stats.decision_ms_p99} ms)")  # fmt: skip
        await plans(url, org_id, busy.id)
        await db.dispose()
    finally:
        if not args.keep:
            await drop_pg_database(url)


if __name__ == "__main__":
    asyncio.run(main())
