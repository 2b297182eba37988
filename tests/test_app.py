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


def test_routers_served_as_routes_describe_and_route_as_included(app) -> None:  # type: ignore[no-untyped-def]
    """``serve_routes`` adds each router's routes to the app instead of including the router as
    a branch (a cost per request): the OpenAPI document and the routes are what including gives,
    router by router, and the app is left with no branch."""
    from fastapi import FastAPI
    from fastapi.routing import APIRoute
    from starlette.routing import Mount, Route

    from numberplane.app import ROUTERS, serve_routes
    from numberplane.console import views as console_views

    def routes(served: FastAPI) -> list[tuple[str, str, list[str], str]]:
        return [(type(r).__name__, r.path, sorted(r.methods or ()), r.name) for r in served.routes]  # type: ignore[attr-defined]

    for router in (*ROUTERS, console_views.router):
        included, served = FastAPI(), FastAPI()
        included.include_router(router)
        serve_routes(served, router)
        assert served.openapi() == included.openapi()
        assert list(served.openapi()["paths"]) == list(included.openapi()["paths"])  # in the same order
        assert routes(served)[len(FastAPI().routes) :] == [  # past the app's own (docs, OpenAPI)
            (type(r).__name__, r.path, sorted(r.methods or ()), r.name)  # type: ignore[attr-defined]
            for r in router.routes
        ]
    assert all(isinstance(route, APIRoute | Route | Mount) for route in app.routes)
    assert sum(isinstance(route, APIRoute) for route in app.routes) > 100


async def test_a_405_allows_every_method_served_at_the_path(client: httpx.AsyncClient) -> None:
    """RFC 9110: the Allow of a 405 lists the resource's methods, not one route's (GET and POST
    are two routes at /v1/agents), in the shape of the API the path belongs to."""
    response = await client.put("/v1/agents")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"
    assert response.json()["code"] == "method_not_allowed"
    one = await client.patch("/v1/audit-events/some-id")
    assert one.status_code == 405 and one.headers["Allow"] == "GET"
    dialect = await client.put("/freya/api/v2/phone-numbers/some-id")
    assert dialect.status_code == 405 and dialect.headers["Allow"] == "DELETE, GET"
    assert dialect.json()["error"] == "method_not_allowed"
