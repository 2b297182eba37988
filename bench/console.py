"""Benchmark: every console page's server-side time with 100,000 numbers, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.console                 # SQLite (a temp file)
    NUMBERPLANE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m bench.console             # SQLite, then PostgreSQL (a throwaway database)

The org gets its numbers through the import service (names, agents bound to some), a few
agents, webhook endpoints and audit rows; then a signed-in owner asks for each page through the
whole app in-process (httpx's ASGI transport: routing, session, services, templates). The budget
is 100 ms a page. Prints its figures; never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
os.environ.setdefault("NUMBERPLANE_ALLOW_PRIVATE_URLS", "1")

from tests.support import create_pg_database, drop_pg_database, pg_base_url

from numberplane.agents import service as agents_service
from numberplane.agents.schemas import AgentCreate
from numberplane.app import create_app
from numberplane.carriers import service as carriers_service
from numberplane.events import endpoints
from numberplane.events.schemas import WebhookEndpointCreate
from numberplane.kernel.db import Actor, Database
from numberplane.migrate import upgrade
from numberplane.numbers import service as numbers_service
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


async def run(url: str, rows: int, repeat: int) -> list[tuple[str, float, float, float]]:
    db = Database(url)
    started = time.perf_counter()
    ids = await seed(db, rows)
    print(f"  seeded {rows:,} numbers in {time.perf_counter() - started:.0f} s")
    if db.dialect == "postgresql":  # what autovacuum does soon after a bulk load: fresh statistics
        async with db.engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
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
        pages = {
            "numbers (first page)": "/console",
            "numbers (1,000 pages deep)": f"/console?cursor={cursor}",
            "numbers search (a window of 10,000)": "/console?q=Line+9424",
            "numbers search, no match": "/console?q=nothing+like+this",
            "numbers search, next window": f"/console?q=nothing+like+this&cursor={cursor}",
            "numbers filter area code": "/console?area_code=617",
            "numbers filter status all": "/console?status=all",
            "buy (search the sandbox)": "/console/buy?search=1&area_code=415&country=US&type=local",
            "number page": f"/console/numbers/{ids['number_id']}",
            "number page + route preview": f"/console/numbers/{ids['number_id']}?preview=1&format=twiml",
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
    parser.add_argument("--repeat", type=int, default=20, help="requests per page")
    args = parser.parse_args()
    targets: list[tuple[str, str]] = [("sqlite", f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db")]
    pg = pg_base_url()
    if pg:
        targets.append(("postgresql", asyncio.run(create_pg_database(pg))))
    else:
        print("PostgreSQL skipped: set NUMBERPLANE_TEST_DATABASE_URL to include it")
    for backend, url in targets:
        print(f"[{backend}] {args.rows:,} numbers, {args.repeat} requests a page (budget {BUDGET_MS:.0f} ms)")
        upgrade(url)
        try:
            figures = asyncio.run(run(url, args.rows, args.repeat))
        finally:
            if backend == "postgresql":
                asyncio.run(drop_pg_database(url))
        print(f"  {'page':36} {'median':>9} {'p90':>9} {'max':>9}")
        for name, median, p90, worst in figures:
            flag = "" if p90 <= BUDGET_MS else "  over budget"
            print(f"  {name:36} {median:7.1f}ms {p90:7.1f}ms {worst:7.1f}ms{flag}")


if __name__ == "__main__":
    main()
