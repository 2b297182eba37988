"""Docs, OpenAPI and health endpoints."""

from __future__ import annotations

import httpx

from tests.support import OrgCreds


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

    for router in (*ROUTERS, console_views.router):
        included, served = FastAPI(), FastAPI()
        included.include_router(router)
        serve_routes(served, router)
        assert served.openapi() == included.openapi()
        assert list(served.openapi()["paths"]) == list(included.openapi()["paths"])  # in the same order
        for route in router.routes:  # and every route is found by name at the same path
            if isinstance(route, APIRoute):
                params = {name: "x" for name in route.param_convertors}
                assert served.url_path_for(route.name, **params) == included.url_path_for(
                    route.name, **params
                )
    assert all(isinstance(route, APIRoute | Route | Mount) for route in app.routes)
    assert sum(isinstance(route, APIRoute) for route in app.routes) > 100


async def test_a_405_allows_every_method_served_at_the_path(client: httpx.AsyncClient) -> None:
    """RFC 9110: the Allow of a 405 lists the resource's methods, not one route's (GET and POST
    are two routes at /v1/agents; HEAD goes with GET), in the shape of the API the path belongs to."""
    response = await client.put("/v1/agents")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, POST"
    assert response.json()["code"] == "method_not_allowed"
    one = await client.patch("/v1/audit-events/some-id")
    assert one.status_code == 405 and one.headers["Allow"] == "GET, HEAD"
    dialect = await client.put("/freya/api/v2/phone-numbers/some-id")
    assert dialect.status_code == 405 and dialect.headers["Allow"] == "DELETE, GET, HEAD"
    assert dialect.json()["error"] == "method_not_allowed"


async def test_head_is_the_get_without_its_body(client: httpx.AsyncClient, org: OrgCreds) -> None:
    """Monitors probe with HEAD: every GET answers it, same status and headers, no body."""
    for path, headers in (("/healthz", {}), ("/v1/agents?limit=1", org.bearer), ("/v1/agents", {})):
        get = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert head.status_code == get.status_code and head.content == b""
        assert head.headers["content-length"] == str(len(get.content))
        assert head.headers["content-type"] == get.headers["content-type"]
    assert (await client.head("/v1/agents")).status_code == 401  # the GET's answer: no key
    refused = await client.head("/v1/test-calls")  # POST only
    assert refused.status_code == 405 and refused.headers["Allow"] == "POST" and refused.content == b""


def test_head_over_the_wire(live_server) -> None:  # type: ignore[no-untyped-def]
    """Through the server's own HTTP stack: the GET's length announced, no body on the wire (the
    connection stays usable: a body sent after a HEAD answer would be read as the next answer)."""
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        head = http.head("/healthz")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(http.get("/healthz").content))
        assert http.get("/healthz").json() == {"status": "ok"}  # the same connection, in step
