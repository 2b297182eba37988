"""Benchmark: every console page's server-side time with 100,000 numbers, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.console                 # SQLite (a temp file)
    NUMBERPLANE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m bench.console             # SQLite, then PostgreSQL (a throwaway database)

The org gets its numbers through the import service (names, agents bound to some), a few
agents, webhook endpoints and audit rows, and ``--calls`` call records over the last 30 days
(written straight into the table: one busy number takes 15% of them, the first page's numbers
have calls today, the rest are spread; busy calls and rejections are rare, so their filters scan
windows); then a signed-in owner asks for each page through the whole app in-process (httpx's
ASGI transport: routing, session, services, templates). The budget is 100 ms a page. Prints its
figures; never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import re
import statistics
import tempfile
import time

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert, select, text

os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
os.environ.setdefault("NUMBERPLANE_ALLOW_PRIVATE_URLS", "1")

from tests.support import create_pg_database, drop_pg_database, pg_base_url

from bench.calls import uuid7_at
from numberplane.agents import service as agents_service
from numberplane.agents.schemas import AgentCreate
from numberplane.app import create_app
from numberplane.calls import partitions
from numberplane.calls.models import Call
from numberplane.calls.reading import list_calls
from numberplane.carriers import service as carriers_service
from numberplane.events import endpoints
from numberplane.events.schemas import WebhookEndpointCreate
from numberplane.kernel.db import Actor, Database, utcnow
from numberplane.migrate import upgrade
from numberplane.numbers import service as numbers_service
from numberplane.numbers.models import PhoneNumber
from numberplane.numbers.schemas import PhoneNumberUpdate
from numberplane.tenancy import users

PASSWORD = "bench password 123"
BUDGET_MS = 100.0


def numbers(count: int) -> list[str]:
    out = []
    for area in ("212", "213", "303", "312", "404", "415", "512", "617", "646", "702", "713", "818"):
        for line in range(10_000):
            out.append(f"+1{area}234{line:04d}")
            if len(out) == count:
                return out
    raise ValueError("too many")


async def seed(db: Database, rows: int) -> dict[str, str]:
    async with db.uow(Actor.cli()) as uow:
        org, _key = await carriers_service.open_org(uow=uow, name="bench")
        await uow.commit()
    actor = Actor.cli(org.id)
    agents = [
        await agents_service.create_agent(
            db=db, actor=actor, data=AgentCreate(name=f"Agent {i}", prompt="Hi")
        )
        for i in range(5)
    ]
    all_numbers = numbers(rows)
    for start in range(0, rows, 10_000):
        batch = []
        for i, number in enumerate(all_numbers[start : start + 10_000], start=start):
            row: dict[str, object] = {"phone_number": number, "name": f"Line {i}"}
            if i % 3 == 0:
                row["inbound_agents"] = [{"agent_id": agents[i % 5].id}]
            batch.append(row)
        report = await numbers_service.import_numbers(db=db, actor=actor, rows=batch, first_row=start + 1)
        assert report.created == len(batch), report.results[:3]
    for i in range(3):
        await endpoints.create_endpoint(
            db=db,
            actor=actor,
            data=WebhookEndpointCreate(url=f"http://127.0.0.1:9/hook{i}"),  # type: ignore[arg-type]
            allow_private=True,
        )
    page = await numbers_service.list_numbers(db=db, org_id=org.id, limit=1)
    number_id = page.data[0].id
    for i in range(50):  # some audit history for the audit page
        await numbers_service.update_number(
            db=db, actor=actor, ref=number_id, patch=PhoneNumberUpdate(name=f"Renamed {i}")
        )
    async with db.uow(actor) as uow:
        await users.create_user(
            uow=uow, org_id=org.id, email="owner@bench.test", role="owner", password=PASSWORD
        )
        await uow.commit()
    return {"org_id": org.id, "number_id": number_id, "agent_id": agents[0].id}


TRACE = [
    {"step": "number", "result": "active", "detail": "found and active"},
    {"step": "country", "result": "skipped", "detail": "no allowed_inbound_countries"},
    {"step": "webhook", "result": "not_configured", "detail": "no inbound_webhook_url"},
    {"step": "agent", "result": "picked", "detail": "the number's only connectable agent"},
]


async def seed_calls(db: Database, org_id: str, hot_id: str, calls: int) -> None:
    """``calls`` records over the last 30 days: 15% to the hot number, 20 today to each of the
    first page's numbers, the rest spread; about 0.5% busy, 1% rejected, 5% on the sandbox."""
    now = utcnow()
    if db.dialect == "postgresql":
        await partitions.ensure(db, now=now - dt.timedelta(days=31), ahead=2)
    async with db.session() as session:
        held = (
            await session.execute(
                select(PhoneNumber.id, PhoneNumber.phone_number)
                .where(PhoneNumber.org_id == org_id)
                .order_by(PhoneNumber.id.desc())
            )
        ).all()
    by_id = dict(held)
    first_page = [number_id for number_id, _ in held[:50]]
    rand = random.Random(13)
    end_ms = int(now.timestamp() * 1000)
    midnight_ms = int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    today = [
        (n, midnight_ms + rand.randrange(max(1, end_ms - midnight_ms))) for n in first_page for _ in range(20)
    ]
    chunk = 10_000
    for start in range(0, calls, chunk):
        records = []
        for i in range(start, min(start + chunk, calls)):
            if i < len(today):
                number_id, ms = today[i]
            else:
                number_id = hot_id if rand.random() < 0.15 else held[rand.randrange(len(held))][0]
                ms = end_ms - rand.randrange(30 * 86_400_000)
            at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
            roll = rand.random()
            status = "busy" if roll < 0.005 else ("no_answer" if roll < 0.2 else "completed")
            duration = rand.randrange(1, 600) if status == "completed" else 0
            records.append(
                {
                    "id": uuid7_at(ms, rand),
                    "org_id": org_id,
                    "phone_number_id": number_id,
                    "phone_number": by_id[number_id],
                    "from_number": "+12125550123",
                    "direction": "inbound",
                    "carrier": "sandbox" if rand.random() < 0.05 else "twilio",
                    "carrier_call_id": f"CA{i:032x}",
                    "status": status,
                    "outcome": "rejected" if rand.random() < 0.01 else "agent_stream",
                    "reason": "agent",
                    "decision_ms": round(rand.lognormvariate(0.0, 0.5), 3),
                    "trace": TRACE,
                    "started_at": at,
                    "answered_at": at + dt.timedelta(seconds=2) if status == "completed" else None,
                    "ended_at": at + dt.timedelta(seconds=3 + duration),
                    "duration_s": duration,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        async with db.session() as session:
            await session.execute(insert(Call), records)
            await session.commit()


async def run(url: str, rows: int, calls: int, repeat: int) -> list[tuple[str, float, float, float]]:
    db = Database(url)
    started = time.perf_counter()
    ids = await seed(db, rows)
    print(f"  seeded {rows:,} numbers in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    await seed_calls(db, ids["org_id"], ids["number_id"], calls)
    print(f"  seeded {calls:,} calls in {time.perf_counter() - started:.0f} s")
    if db.dialect == "postgresql":  # what autovacuum does soon after a bulk load: statistics, visibility
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    app = create_app(db=db)
    transport = httpx.ASGITransport(app=app)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as http:
        form = await http.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        signed = await http.post(
            "/console/sign-in", data={"csrf": csrf, "email": "owner@bench.test", "password": PASSWORD}
        )
        assert signed.status_code == 303, signed.text[:300]
        # A page 1,000 pages deep (50,000 numbers in): its cursor, found by walking the service.
        cursor = None
        for _ in range(1000):
            page = await numbers_service.list_numbers(db=db, org_id=ids["org_id"], limit=50, cursor=cursor)
            cursor = page.next_cursor
        call_cursor = None
        for _ in range(200):  # the call log 200 pages (10,000 calls) deep
            calls_page = await list_calls(db=db, org_id=ids["org_id"], limit=50, cursor=call_cursor)
            call_cursor = calls_page.next_cursor
        a_call = calls_page.data[0].id
        pages = {
            "numbers (first page)": "/console",
            "numbers (1,000 pages deep)": f"/console?cursor={cursor}",
            "numbers search (a window of 10,000)": "/console?q=Line+9424",
            "numbers search, no match": "/console?q=nothing+like+this",
            "numbers search, next window": f"/console?q=nothing+like+this&cursor={cursor}",
            "numbers filter area code": "/console?area_code=617",
            "numbers filter status all": "/console?status=all",
            "buy (search the sandbox)": "/console/buy?search=1&area_code=415&country=US&type=local",
            "number page (the busy one: chart, recent calls)": f"/console/numbers/{ids['number_id']}",
            "number page + route preview": f"/console/numbers/{ids['number_id']}?preview=1&format=twiml",
            "calls (first page)": "/console/calls",
            "calls (200 pages deep)": f"/console/calls?cursor={call_cursor}",
            "calls filter number (the busy one)": f"/console/calls?number_id={ids['number_id']}",
            "calls filter status busy (rare)": "/console/calls?status=busy",
            "calls filter outcome+carrier": "/console/calls?outcome=rejected&carrier=sandbox",
            "calls filter since+until (a day)": "/console/calls?since={d}&until={d}".format(
                d=(utcnow() - dt.timedelta(days=10)).date().isoformat()
            ),
            "a call's page": f"/console/calls/{a_call}",
            "agents": "/console/agents",
            "agent page": f"/console/agents/{ids['agent_id']}",
            "import": "/console/import",
            "webhooks": "/console/webhooks",
            "audit log": "/console/audit",
            "audit log filtered": "/console/audit?action=phone_number.updated",
            "carrier accounts": "/console/carrier-accounts",
            "api keys": "/console/api-keys",
        }
        for name, path in pages.items():
            times = []
            for _ in range(repeat + 1):
                t0 = time.perf_counter()
                response = await http.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
            times = times[1:]  # the first warms caches (templates, statements)
            out.append((name, statistics.median(times), sorted(times)[int(len(times) * 0.9)], max(times)))
    await db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300_000, help="call records over 30 days")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    targets: list[tuple[str, str]] = []
    if not args.no_sqlite:
        targets.append(("sqlite", f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"))
    pg = pg_base_url()
    if pg:
        targets.append(("postgresql", asyncio.run(create_pg_database(pg))))
    else:
        print("PostgreSQL skipped: set NUMBERPLANE_TEST_DATABASE_URL to include it")
    for backend, url in targets:
        print(
            f"[{backend}] {args.rows:,} numbers, {args.calls:,} calls, {args.repeat} requests a page "
            f"(budget {BUDGET_MS:.0f} ms)"
        )
        upgrade(url)
        try:
            figures = asyncio.run(run(url, args.rows, args.calls, args.repeat))
        finally:
            if backend == "postgresql":
                asyncio.run(drop_pg_database(url))
        print(f"  {'page':48} {'median':>9} {'p90':>9} {'max':>9}")
        for name, median, p90, worst in figures:
            flag = "" if p90 <= BUDGET_MS else "  over budget"
            print(f"  {name:48} {median:7.1f}ms {p90:7.1f}ms {worst:7.1f}ms{flag}")


if __name__ == "__main__":
    main()
