"""Console fixtures: users of each role, an httpx client that signs in like a browser, and a
real Chromium (Debian's /usr/bin/chromium, driven by Playwright for Python)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from numberplane.app import create_app
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.settings import Settings
from numberplane.tenancy import users
from tests.support import LiveServer, OrgCreds, free_port

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class ConsoleUser:
    email: str
    password: str
    role: str
    org_id: str


async def make_user(db: Database, org_id: str, role: str) -> ConsoleUser:
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    async with db.uow(Actor.cli(org_id)) as uow:
        await users.create_user(uow=uow, org_id=org_id, email=email, role=role, password=PASSWORD)
        await uow.commit()
    return ConsoleUser(email=email, password=PASSWORD, role=role, org_id=org_id)


@pytest.fixture
async def owner(db: Database, org: OrgCreds) -> ConsoleUser:
    return await make_user(db, org.org_id, "owner")


@pytest.fixture
async def viewer(db: Database, org: OrgCreds) -> ConsoleUser:
    return await make_user(db, org.org_id, "viewer")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def console_client(app, address: str = "127.0.0.1", scheme: str = "http") -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver", timeout=30)


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await http.get("/console/sign-in")
    return await http.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "email": email, "password": password, "next": "/console"},
    )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per session
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def calling_server(settings: Settings, db_url: str) -> Iterator[LiveServer]:
    """The app on loopback with NUMBERPLANE_PUBLIC_URL naming itself, so a "Test call" (the
    number's carrier calling the public URL) reaches it, as on a fresh install."""
    port = free_port()
    mine = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    server = LiveServer(create_app(settings=mine, db=Database(db_url)), port=port).start()
    yield server
    server.stop()
