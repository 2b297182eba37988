"""Dialect tests talk to the live server on loopback, as a vendor's client would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import LiveServer


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as c:
        yield c
