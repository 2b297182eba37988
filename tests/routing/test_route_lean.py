"""GET /v1/route on the fast path: the same bytes as the FastAPI view when it answers, and the
view's own answer (errors in the API's shape) whenever it hands over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from numberplane.routing import api_route
from numberplane.routing.fastpath import VoiceFastPath
from tests.routing.world import World
from tests.support import OrgCreds

CALLER = "+12125550123"
SKIP_HEADERS = {"x-request-id", "date", "server"}


@pytest.fixture
async def both(app) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    fast = VoiceFastPath(app.build_middleware_stack(), app)

    async def in_front(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app
        await fast(scope, receive, send)

    view = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    lean = httpx.AsyncClient(transport=httpx.ASGITransport(app=in_front), base_url="http://testserver")
    async with view, lean:
        yield view, lean


def _shape(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in SKIP_HEADERS}
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        body = {k: v for k, v in response.json().items() if k not in ("request_id", "instance")}
        headers.pop("content-length", None)
        return response.status_code, headers, body
    return response.status_code, headers, response.content


async def test_answers_are_byte_identical_and_served_lean(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], app: Any, world: World, org: OrgCreds
) -> None:
    view, lean = both
    stream = await world.agent(stream_url="wss://agents.example.com/lean", versions=2)
    sip = await world.agent(sip_uri="sip:bot@livekit.example.com")
    streamed = await world.number(world.accounts["twilio"], agents=[(stream, None, 1.0)])
    sipped = await world.number(None, agents=[(sip, None, 1.0)])
    assert (await view.get("/v1/agents?limit=1", headers=org.bearer)).status_code == 200  # key cached
    queries: list[dict[str, str]] = []
    for to in (
        streamed.phone_number,
        streamed.phone_number[2:],
        f"sip:{sipped.phone_number}@pbx.example.com",
        world.fresh_number(),
        "hello",
    ):
        for fmt in (None, "json", "twiml", "laml", "texml", "ncco"):
            query = {"to": to, "from": "2125550123", "call_id": "CA<&\"'>1"}
            if fmt:
                query["format"] = fmt
            queries.append(query)
    queries.append({"to": streamed.phone_number, "webhook": "false", "unknown": "ignored"})
    for query in queries:
        for headers in (org.bearer, org.key_headers):
            answered = await view.get("/v1/route", params=query, headers=headers)
            fast = await lean.get("/v1/route", params=query, headers=headers)
            assert answered.status_code == 200, answered.text
            assert _shape(fast) == _shape(answered), query
            served = await api_route.lean(app, urlencode(query), {k.lower(): v for k, v in headers.items()})
            assert served is not None, query
            assert served[0].body == answered.content


@pytest.mark.parametrize(
    "query",
    [
        "",
        "from=%2B12125550123",
        "to=",
        "to=%2B14155550100&format=yaml",
        "to=%2B14155550100&webhook=maybe",
        "to=%2B14155550100&webhook=yes",
        "to=%2B14155550100&to=%2B14155550101",
        "to=" + "1" * 257,
        "to=%2B14155550100&call_id=" + "c" * 129,
    ],
)
async def test_what_the_view_must_judge_goes_to_the_view(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], app: Any, org: OrgCreds, query: str
) -> None:
    view, lean = both
    assert (await view.get("/v1/agents?limit=1", headers=org.bearer)).status_code == 200  # key cached
    assert await api_route.lean(app, query, {"authorization": org.bearer["Authorization"]}) is None
    answered = await view.get(f"/v1/route?{query}", headers=org.bearer)
    fast = await lean.get(f"/v1/route?{query}", headers=org.bearer)
    assert _shape(fast) == _shape(answered)


@pytest.mark.parametrize("kind", ["none", "wrong_secret", "unknown_key", "malformed"])
async def test_keys_it_cannot_vouch_for_get_the_views_401(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], app: Any, org: OrgCreds, kind: str
) -> None:
    view, lean = both
    headers = {
        "none": {},
        "wrong_secret": {"Authorization": f"Bearer {org.key_id}.wrong"},
        "unknown_key": {"Authorization": "Bearer key_0123456789abcdef01234567.secret"},
        "malformed": {"Authorization": "Bearer nodot"},
    }[kind]
    assert (await view.get("/v1/agents?limit=1", headers=org.bearer)).status_code == 200
    query = "to=%2B14155550100"
    assert await api_route.lean(app, query, {k.lower(): v for k, v in headers.items()}) is None
    answered = await view.get(f"/v1/route?{query}", headers=headers)
    fast = await lean.get(f"/v1/route?{query}", headers=headers)
    assert answered.status_code == 401
    assert _shape(fast) == _shape(answered)
