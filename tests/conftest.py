"""Fixtures: every storage test runs on SQLite and, when NUMBERPLANE_TEST_DATABASE_URL names a
PostgreSQL server, on PostgreSQL too (a fresh database per session, dropped at the end)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from cryptography.fernet import Fernet

# Settings are read once per process: fix them before anything imports numberplane.kernel.settings.
os.environ.setdefault("NUMBERPLANE_SECRET_KEY", Fernet.generate_key().decode())
os.environ["NUMBERPLANE_ALLOW_PRIVATE_URLS"] = "1"
os.environ.setdefault("NUMBERPLANE_RUN_WORKER_IN_PROCESS", "0")
# Apps made in the test process write call records inline (a writer child per app made would cost
# each its start-up); tests/calls/test_writer.py and every ServerProcess use the writer process.
os.environ.setdefault("NUMBERPLANE_CALL_WRITER", "inline")

from numberplane.app import create_app
from numberplane.carriers import service as carriers_service
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.settings import Settings, get_settings
from numberplane.migrate import upgrade
from tests.fakes.vonage import FakeVonage
from tests.support import (
    AreaCodes,
    LiveServer,
    OrgCreds,
    create_pg_database,
    drop_pg_database,
    operator_base_url,
    pg_base_url,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'numberplane.db'}"
        upgrade(url)
        yield url
        return
    base = pg_base_url()
    if base is None:
        pytest.skip(
            "PostgreSQL tests skipped: set NUMBERPLANE_TEST_DATABASE_URL "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test) to run them"
        )
    url = asyncio.run(create_pg_database(base))
    upgrade(url)
    yield url
    asyncio.run(drop_pg_database(url))


@pytest.fixture(scope="session")
def backend(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def settings(db_url: str) -> Settings:
    return get_settings().model_copy(update={"database_url": db_url})


@pytest.fixture(scope="session")
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings=settings, db=db)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(settings: Settings, db_url: str) -> Iterator[LiveServer]:
    """The real app on 127.0.0.1 with its own engine (uvicorn runs its own event loop)."""
    server = LiveServer(create_app(settings=settings, db=Database(db_url))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def area_codes() -> AreaCodes:
    return AreaCodes()


async def make_org(db: Database, name: str = "Test Org") -> OrgCreds:
    async with db.uow(Actor.cli()) as uow:
        org, key = await carriers_service.open_org(uow=uow, name=name)
        await uow.commit()
    return OrgCreds(org_id=org.id, key_id=key.key_id, secret=key.secret, token=key.token)


@pytest.fixture
def fake_vonage(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVonage]:
    """A fake Vonage Account API where the operator points Vonage for this test."""
    fake = FakeVonage()
    fake.start()
    operator_base_url(monkeypatch, "vonage", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
async def org(db: Database) -> OrgCreds:
    return await make_org(db, "Org A")


@pytest.fixture
async def other_org(db: Database) -> OrgCreds:
    return await make_org(db, "Org B")
