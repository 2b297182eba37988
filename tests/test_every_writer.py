"""Every process that writes leaves every running server's caches right.

A server runs in its own process with its own route cache; the writers are other processes:
``numberplane numbers import`` and ``numberplane carriers reconcile`` (and the tests' own
process, another writer). Each change must reach the server within a second — through NOTIFY
on PostgreSQL, through ``change_log`` on SQLite — even after the server cached the number as
unknown, which is what a user first tries.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from numberplane.carriers.models import SandboxNumber
from numberplane.kernel.db import Database
from tests.support import AreaCodes, OrgCreds, ServerProcess, wait_for

# How long a committed change may take to reach another process's cache.
COHERENT_WITHIN_S = 1.0


def cli(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "numberplane", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def server(db_url: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(db_url)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


async def _decision(http: httpx.AsyncClient, org: OrgCreds, e164: str) -> dict[str, Any]:
    response = await http.get("/v1/route", params={"to": e164, "call_id": "c1"}, headers=org.bearer)
    assert response.status_code == 200, response.text
    decision: dict[str, Any] = response.json()["decision"]
    return decision


async def _cache_hits(http: httpx.AsyncClient) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith('numberplane_route_cache_lookups_total{result="hit"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_cli_import_routes_on_a_server_that_cached_the_number_as_unknown(
    server: ServerProcess, db_url: str, org: OrgCreds, area_codes: AreaCodes, tmp_path: Path
) -> None:
    e164 = f"+1{area_codes.take()}5550142"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        agent = await http.post(
            "/v1/agents",
            json={"name": "Desk", "connect": {"stream_url": "wss://agents.example.com/desk"}},
            headers=org.bearer,
        )
        assert agent.status_code == 201, agent.text

        # The server is told about every change once its listener is up: then it caches.
        async def cached_unknown() -> bool:
            before = await _cache_hits(http)
            assert (await _decision(http, org, e164))["outcome"] == "not_in_service"
            return await _cache_hits(http) > before

        await wait_for(cached_unknown, timeout=15, interval=0.1)

        source = tmp_path / "numbers.csv"
        with source.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phone_number", "name", "inbound_agent_id"])
            writer.writerow([e164, "Imported line", agent.json()["id"]])
        cli("numbers", "import", str(source), "--org", org.org_id, db_url=db_url)

        async def routes_to_the_agent() -> bool:
            return (await _decision(http, org, e164)).get("stream_url") == "wss://agents.example.com/desk"

        await wait_for(routes_to_the_agent, timeout=COHERENT_WITHIN_S, interval=0.02)


async def test_a_cli_reconcile_that_finds_a_number_gone_stops_its_routing(
    server: ServerProcess, db_url: str, db: Database, org: OrgCreds, area_codes: AreaCodes
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        agent = (
            await http.post(
                "/v1/agents",
                json={"name": "Sales", "connect": {"stream_url": "wss://agents.example.com/sales"}},
                headers=org.bearer,
            )
        ).json()
        bought = await http.post(
            "/v1/phone-numbers",
            json={"area_code": area_codes.take(), "inbound_agents": [{"agent_id": agent["id"]}]},
            headers=org.bearer,
        )
        assert bought.status_code == 201, bought.text
        number = bought.json()

        async def cached_routing() -> bool:
            before = await _cache_hits(http)
            assert (await _decision(http, org, number["phone_number"]))["outcome"] == "agent_stream"
            return await _cache_hits(http) > before

        await wait_for(cached_routing, timeout=15, interval=0.1)

        # The carrier lets the number go behind our back (its own books, not ours).
        async with db.session() as session:
            await session.execute(
                delete(SandboxNumber).where(SandboxNumber.phone_number == number["phone_number"])
            )
            await session.commit()
        done = cli(
            "carriers", "reconcile", "--account", number["carrier_account_id"], "--json", db_url=db_url
        )
        assert '"missing_at_carrier"' in done.stdout

        async def stopped() -> bool:
            return (await _decision(http, org, number["phone_number"]))["outcome"] == "not_in_service"

        await wait_for(stopped, timeout=COHERENT_WITHIN_S, interval=0.02)
        got = await http.get(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)
        assert got.json()["status"] == "released"
        assert got.json()["carrier_sync"]["status"] == "missing_at_carrier"
