"""Dialect tests talk to the live server on loopback, as a vendor's client would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio
from tests.support import LiveServer, operator_base_url


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as c:
        yield c


# Each fake is where the operator points that carrier's API for the test (an org's account never
# chooses its own base URL).


@pytest.fixture
def fake_twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.start()
    operator_base_url(monkeypatch, "twilio", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def fake_telnyx(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelnyx]:
    fake = FakeTelnyx()
    fake.start()
    operator_base_url(monkeypatch, "telnyx", fake.url + "/v2")
    yield fake
    fake.stop()
