from __future__ import annotations

from collections.abc import Iterator

import pytest

from numberplane.kernel.db import Database
from numberplane.kernel.settings import Settings
from tests.routing.hooks import HookServer
from tests.routing.world import World, make_world
from tests.support import AreaCodes, OrgCreds


@pytest.fixture
async def world(db: Database, org: OrgCreds, settings: Settings, area_codes: AreaCodes) -> World:
    return await make_world(db, org.org_id, settings.public_url, area_codes)


@pytest.fixture
async def other_world(db: Database, other_org: OrgCreds, settings: Settings, area_codes: AreaCodes) -> World:
    return await make_world(db, other_org.org_id, settings.public_url, area_codes)


@pytest.fixture(scope="session")
def hooks() -> Iterator[HookServer]:
    server = HookServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
async def _close_routing(app):  # type: ignore[no-untyped-def]
    """Close the session app's data-plane state (asyncpg pool, HTTP client) at the end."""
    yield
    routing = getattr(app.state, "routing", None)
    if routing is not None:
        app.state.routing = None
        await routing.aclose()
