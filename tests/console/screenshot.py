"""Make docs/console-numbers.png: the numbers page of a small demo org, in Debian's Chromium.

    .venv/bin/python -m tests.console.screenshot

A throwaway SQLite database with a few agents and numbers (some with calls today, recorded through
the call service), the real app on 127.0.0.1, a signed-in owner; the README shows the picture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
os.environ.setdefault("NUMBERPLANE_RUN_WORKER_IN_PROCESS", "0")

from numberplane.agents import service as agents_service
from numberplane.agents.schemas import AgentCreate
from numberplane.app import create_app
from numberplane.calls.service import DecisionFacts, Observation, write_batch
from numberplane.carriers import service as carriers_service
from numberplane.kernel.db import Actor, Database, utcnow
from numberplane.kernel.settings import get_settings
from numberplane.migrate import upgrade
from numberplane.numbers import service as numbers_service
from numberplane.tenancy import users
from tests.support import LiveServer

OUT = Path(__file__).resolve().parents[2] / "docs" / "console-numbers.png"
PASSWORD = "screenshot password"
NAMES = [
    "Front desk", "Sales line", "Support (EN)", "Support (ES)", "After hours", "Bookings",
    "Denver office", "Chicago office", "Billing", "Partner hotline", "Press", "Callbacks",
]  # fmt: skip


async def seed(db: Database) -> None:
    async with db.uow(Actor.cli()) as uow:
        org, _key = await carriers_service.open_org(uow=uow, name="Acme Voice")
        await uow.commit()
    actor = Actor.cli(org.id)
    agents = [
        await agents_service.create_agent(
            db=db, actor=actor, data=AgentCreate(name=name, prompt="Be helpful.")
        )
        for name in ("Receptionist", "Sales agent", "Support agent", "Spanish support")
    ]
    rows = []
    for i, name in enumerate(NAMES):
        row: dict[str, object] = {"phone_number": f"+1303555{i + 100:04d}", "name": name}
        if i % 4 != 3:
            bound = [{"agent_id": agents[i % 4].id, "weight": 1}]
            if i == 1:
                bound = [{"agent_id": agents[1].id, "weight": 0.7}, {"agent_id": agents[0].id, "weight": 0.3}]
            row["inbound_agents"] = bound
        rows.append(row)
    report = await numbers_service.import_numbers(db=db, actor=actor, rows=rows, first_row=1)
    # Calls today (at most the minutes since midnight UTC, one a minute, so all are today's).
    now = utcnow()
    minutes = int((now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() // 60)
    calls: list[Observation] = []
    for i, result in enumerate(report.results):
        for j in range(min(minutes, (i * 7) % 23 if i % 4 != 3 else 0)):
            facts = DecisionFacts(outcome="agent_stream", reason="agent", decision_ms=1.0, trace=[])
            calls.append(
                Observation(
                    org_id=org.id,
                    carrier="sandbox",
                    carrier_call_id=f"SC{i:04d}{j:04d}",
                    at=now - dt.timedelta(minutes=j),
                    phone_number_id=result.id,
                    phone_number=result.phone_number,
                    from_number="+12025550123",
                    status="ringing",
                    decision=facts,
                )
            )
    calls.sort(key=lambda o: o.at)  # recorded in the order they rang, as a server would
    await write_batch(db=db, observations=calls)
    async with db.uow(actor) as uow:
        await users.create_user(
            uow=uow, org_id=org.id, email="ops@acme.test", role="owner", password=PASSWORD
        )
        await uow.commit()


async def shoot(url: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 720}, device_scale_factor=1)
        await page.goto(url + "/console")
        await page.get_by_label("Email").fill("ops@acme.test")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="Numbers").wait_for()
        await page.screenshot(path=str(OUT), full_page=False)
        await browser.close()


def main() -> None:
    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/screenshot.db"
    upgrade(url)
    db = Database(url)
    asyncio.run(seed(db))
    asyncio.run(db.dispose())
    settings = get_settings().model_copy(update={"database_url": url})
    server = LiveServer(create_app(settings=settings, db=Database(url))).start()
    try:
        asyncio.run(shoot(server.url))
    finally:
        server.stop()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
