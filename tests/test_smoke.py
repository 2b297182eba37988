from __future__ import annotations

import httpx

from tests.support import OrgCreds


async def test_healthz_and_readyz(client: httpx.AsyncClient, backend: str) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == backend


async def test_org_fixture_creates_a_usable_key(org: OrgCreds) -> None:
    assert org.token.startswith(org.key_id + ".")
