"""Benchmark: a 100,000-row import, and a page 10,000 pages deep in the list, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.import_and_list                 # SQLite (a temp file)
    NUMBERPLANE_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python -m bench.import_and_list             # SQLite, then PostgreSQL (a throwaway database)

Measures through the real HTTP stack in-process (FastAPI over httpx's ASGI transport), so the
figures include JSON parsing, validation, phonenumbers, and the database. Prints its figures;
never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import httpx
from cryptography.fernet import Fernet

os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())

from tests.support import create_pg_database, drop_pg_database, pg_base_url

from numberplane.app import create_app
from numberplane.carriers import service as carriers_service
from numberplane.kernel.db import Actor, Database
from numberplane.migrate import upgrade


def numbers(count: int) -> list[str]:
    """``count`` distinct valid US numbers outside the sandbox's 555 range."""
    out = []
    area_codes = ["212", "213", "303", "312", "404", "415", "512", "617", "646", "702", "713", "818"]
    for area in area_codes:
        for line in range(10_000):
            out.append(f"+1{area}234{line:04d}")
            if len(out) == count:
                return out
    raise ValueError("too many")


async def run(url: str, rows: int, limit: int, depth: int) -> dict[str, float]:
    db = Database(url)
    app = create_app(db=db)
    async with db.uow(Actor.cli()) as uow:
        _, key = await carriers_service.open_org(uow=uow, name="bench")
        await uow.commit()
    headers = {"Authorization": f"Bearer {key.token}"}
    body = {"numbers": [{"phone_number": n} for n in numbers(rows)]}
    figures: dict[str, float] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600
    ) as client:
        start = time.perf_counter()
        response = await client.post("/v1/phone-numbers/import", json=body, headers=headers)
        figures["import_seconds"] = time.perf_counter() - start
        report = response.json()
        assert response.status_code == 200 and report["created"] == rows, response.text[:500]
        figures["import_rows_per_second"] = rows / figures["import_seconds"]

        # Walk to the page ``depth`` pages deep with the cursor, timing the first and the deepest pages.
        cursor = None
        first: list[float] = []
        deep: list[float] = []
        for page in range(1, depth + 1):
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            t0 = time.perf_counter()
            page_body = (await client.get("/v1/phone-numbers", params=params, headers=headers)).json()
            elapsed = time.perf_counter() - t0
            if page <= 20:
                first.append(elapsed)
            if page > depth - 20:
                deep.append(elapsed)
            cursor = page_body["next_cursor"]
            if cursor is None:
                break
        figures["pages_walked"] = page
        figures["first_pages_median_ms"] = statistics.median(first) * 1000
        figures["deep_pages_median_ms"] = statistics.median(deep) * 1000
    await db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=10, help="page size for the list walk")
    parser.add_argument("--depth", type=int, default=10_000, help="how many pages deep to walk")
    args = parser.parse_args()
    targets: list[tuple[str, str]] = []
    tmp = tempfile.mkdtemp()
    targets.append(("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db"))
    pg = pg_base_url()
    if pg:
        targets.append(("postgresql", asyncio.run(create_pg_database(pg))))
    else:
        print("PostgreSQL skipped: set NUMBERPLANE_TEST_DATABASE_URL to include it")
    for name, url in targets:
        upgrade(url)
        try:
            f = asyncio.run(run(url, args.rows, args.limit, args.depth))
        finally:
            if name == "postgresql":
                asyncio.run(drop_pg_database(url))
        print(
            f"[{name}] import {args.rows:,} rows: {f['import_seconds']:.1f} s "
            f"({f['import_rows_per_second']:,.0f} rows/s)"
        )
        print(
            f"[{name}] list (limit {args.limit}): first 20 pages median {f['first_pages_median_ms']:.2f} ms; "
            f"pages {int(f['pages_walked']) - 19}-{int(f['pages_walked'])} median "
            f"{f['deep_pages_median_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
