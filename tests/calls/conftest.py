from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from numberplane.calls.recorder import Recorder
from numberplane.kernel.db import Database
from numberplane.kernel.settings import Settings
from tests.routing.hooks import HookServer
from tests.routing.world import World, make_world
from tests.support import AreaCodes, OrgCreds


@pytest.fixture
async def world(db: Database, org: OrgCreds, settings: Settings, area_codes: AreaCodes) -> World:
    return await make_world(db, org.org_id, settings.public_url, area_codes)


@pytest.fixture
def flush(app: Any) -> Callable[[], Coroutine[Any, Any, int]]:
    """Write what the app's call recorder holds (the ASGI test client runs no lifespan, so no
    background flusher: tests flush at the point where the write-behind would have happened)."""
    recorder: Recorder = app.state.call_recorder
    return recorder.flush


@pytest.fixture(scope="session")
def hooks() -> Iterator[HookServer]:
    server = HookServer().start()
    yield server
    server.stop()
