"""Docs, OpenAPI and health endpoints."""

from __future__ import annotations

import httpx


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Numberplane"
    for path in (
        "/v1/agents",
        "/v1/phone-numbers",
        "/v1/phone-numbers/import",
        "/v1/available-phone-numbers",
        "/v1/phone-numbers/{ref}",
    ):
        assert path in spec["paths"], path
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert made.headers["X-Request-Id"].startswith("req_")


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path) -> None:
    from numberplane.app import create_app
    from numberplane.kernel.db import Database

    db = Database(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/nope.db")
    app = create_app(db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    await db.dispose()
