"""The console's calls over HTTP: the log's filters and paging, a call's page with its trace,
a number's recent calls and chart, calls today on the numbers list, tenancy, and "Test call"
(run by the same service as POST /v1/test-calls; refused to a viewer)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from numberplane.calls.service import DecisionFacts, Observation, write_batch
from numberplane.kernel.db import Database, utcnow
from numberplane.kernel.settings import Settings
from tests.console.conftest import ConsoleUser, console_client, csrf_of, make_user, sign_in
from tests.routing.world import World, make_world
from tests.support import AreaCodes, LiveServer, OrgCreds

TRACE = [
    {"step": "number", "result": "found", "detail": "active"},
    {"step": "country", "result": "allowed", "detail": "US"},
    {"step": "agent", "result": "chosen", "detail": "weighted pick of 2"},
]


def call(
    org_id: str,
    number: object,
    call_id: str,
    at: dt.datetime,
    *,
    status: str = "completed",
    outcome: str = "agent_stream",
    carrier: str = "twilio",
) -> list[Observation]:
    facts = DecisionFacts(outcome=outcome, reason="agent", decision_ms=1.5, trace=TRACE)
    common = {"org_id": org_id, "carrier": carrier, "carrier_call_id": call_id}
    first = Observation(
        **common,  # type: ignore[arg-type]
        at=at,
        phone_number_id=number.id,  # type: ignore[attr-defined]
        phone_number=number.phone_number,  # type: ignore[attr-defined]
        from_number="+12125550199",
        status="ringing",
        decision=facts,
    )
    end = Observation(**common, at=at + dt.timedelta(seconds=70), status=status, duration_s=65)  # type: ignore[arg-type]
    return [first, end]


@pytest.fixture
async def world(db: Database, org: OrgCreds, settings: Settings, area_codes: AreaCodes) -> World:
    return await make_world(db, org.org_id, settings.public_url, area_codes)


@pytest.fixture
async def http(app, owner: ConsoleUser) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with console_client(app) as c:
        await sign_in(c, owner.email, owner.password)
        yield c


def call_links(html: str) -> list[str]:
    return re.findall(r'href="/console/calls/([0-9a-f-]{36})"', html)


async def test_calls_log_filters_pages_and_shows_a_calls_trace(
    http: httpx.AsyncClient, db: Database, world: World, org: OrgCreds
) -> None:
    a = await world.number(None, name="Front desk")
    b = await world.number(None)
    now = utcnow()
    batch: list[Observation] = []
    for i in range(55):  # a's calls, oldest first, one a minute up to now
        batch += call(org.org_id, a, f"cl-a{i}", now - dt.timedelta(minutes=55 - i))
    batch += call(org.org_id, b, "cl-b", now, status="busy", outcome="rejected", carrier="telnyx")
    batch += call(org.org_id, b, "cl-old", now - dt.timedelta(days=3), status="no_answer")
    await write_batch(db=db, observations=batch)

    # Newest first, 50 a page; the next page by keyset has the rest.
    first = await http.get("/console/calls", params={"number_id": a.id})
    assert first.status_code == 200
    page_one = call_links(first.text)
    assert len(page_one) == 50
    next_url = re.search(r'href="([^"]+)" rel="next">Next page', first.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = await http.get(next_url)
    page_two = call_links(second.text)
    assert len(page_two) == 5 and not set(page_one) & set(page_two)
    assert "Next page" not in second.text

    async def shown(**params: str) -> list[str]:
        response = await http.get("/console/calls", params=params)
        assert response.status_code == 200, response.text
        return call_links(response.text)

    b_calls = await shown(number=b.phone_number)
    assert len(b_calls) == 2
    busy = await shown(status="busy")
    assert len(busy) == 1 and busy[0] in b_calls
    old = next(c for c in b_calls if c != busy[0])
    assert await shown(outcome="rejected") == busy == await shown(carrier="telnyx")
    national = f"({b.phone_number[2:5]}) {b.phone_number[5:8]}-{b.phone_number[8:]}"
    assert await shown(number=national, status="no_answer") == [old]
    three_days_ago = (now - dt.timedelta(days=3)).date().isoformat()
    assert await shown(number=b.phone_number, since=three_days_ago, until=three_days_ago) == [old]
    assert await shown(number=b.phone_number, since=now.date().isoformat()) == busy
    assert await shown(carrier="vonage") == []

    bad = await http.get("/console/calls", params={"status": "done"})
    assert bad.status_code == 422 and "status" in bad.text
    bad = await http.get("/console/calls", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.text
    bad = await http.get("/console/calls", params={"number": "not a number"})
    assert bad.status_code == 422 and "number:" in bad.text and "phone_number" not in bad.text

    # A call's page: its fields, and its decision trace in order.
    page = await http.get(f"/console/calls/{busy[0]}")
    assert page.status_code == 200
    text = page.text
    assert "cl-b" in text and "+12125550199" in text and "rejected" in text and "telnyx" in text
    steps = re.findall(r"<li><strong>([a-z ]+)</strong>: <span class=\"mono\">([a-z]+)</span>", text)
    assert steps == [("number", "found"), ("country", "allowed"), ("agent", "chosen")]
    assert f'href="/console/numbers/{b.id}"' in text

    # The numbers list: calls today for the page's numbers (b's call 3 days ago is not today's).
    numbers = await http.get("/console", params={"status": "all"})
    row_a = re.search(rf'href="/console/numbers/{a.id}">Front desk</a>.*?</tr>', numbers.text, re.S)
    row_b = re.search(rf'href="/console/numbers/{b.id}">.*?</tr>', numbers.text, re.S)
    assert row_a and row_b
    today_a = sum(
        1
        for i in range(55)
        if now - dt.timedelta(minutes=55 - i) >= now.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    assert re.search(rf'<td class="num">{today_a}</td>', row_a.group(0))
    assert '<td class="num">1</td>' in row_b.group(0)

    # A number's page: its recent calls (linked) and a 30-day chart an assistive reader can name.
    number_page = await http.get(f"/console/numbers/{a.id}")
    assert call_links(number_page.text) == page_one[:10]
    svg = re.search(r"<svg[^>]*>.*?</svg>", number_page.text, re.S)
    assert svg and 'role="img"' in svg.group(0) and 'aria-labelledby="chart-title"' in svg.group(0)
    title = re.search(r'<title id="chart-title">([^<]+)</title>', svg.group(0)).group(1)  # type: ignore[union-attr]
    assert "Calls per day, last 30 days" in title and "55 in all" in title
    assert len(re.findall(r'<rect class="bar"', svg.group(0))) in (1, 2)  # the last 55 minutes: 1 or 2 days
    assert "<script" not in svg.group(0)
    assert f'href="/console/calls?number_id={a.id}"' in number_page.text


async def test_another_orgs_calls_and_numbers_are_missing(
    http: httpx.AsyncClient,
    app,
    db: Database,
    world: World,
    org: OrgCreds,
    other_org: OrgCreds,  # type: ignore[no-untyped-def]
) -> None:
    number = await world.number(None)
    await write_batch(db=db, observations=call(org.org_id, number, "tn-1", utcnow()))
    call_id = call_links((await http.get("/console/calls", params={"number_id": number.id})).text)[0]
    assert (await http.get(f"/console/calls/{call_id}")).status_code == 200

    stranger = await make_user(db, other_org.org_id, "owner")
    async with console_client(app) as theirs:
        await sign_in(theirs, stranger.email, stranger.password)
        foreign = await theirs.get(f"/console/calls/{call_id}")
        missing = await theirs.get("/console/calls/0190a0a0-0000-7000-8000-000000000000")
        not_an_id = await theirs.get("/console/calls/nope")
        assert foreign.status_code == missing.status_code == not_an_id.status_code == 404
        assert "cl-" not in foreign.text and "tn-1" not in foreign.text
        scoped = await theirs.get("/console/calls", params={"number_id": number.id})
        assert scoped.status_code == 404 and call_links(scoped.text) == []
        assert call_links((await theirs.get("/console/calls")).text) == []
        assert (await theirs.get(f"/console/numbers/{number.id}")).status_code == 404
        page = await theirs.get("/console")
        forged = await theirs.post(
            f"/console/numbers/{number.id}/test-call", data={"csrf": csrf_of(page.text)}
        )
        assert forged.status_code == 404


async def test_a_viewer_sees_calls_but_cannot_place_a_test_call(
    app,
    db: Database,
    world: World,
    org: OrgCreds,
    viewer: ConsoleUser,  # type: ignore[no-untyped-def]
) -> None:
    number = await world.number(world.sandbox)
    async with console_client(app) as http:
        await sign_in(http, viewer.email, viewer.password)
        page = await http.get(f"/console/numbers/{number.id}")
        assert page.status_code == 200 and 'role="img"' in page.text
        assert "Test call</button>" not in page.text
        forged = await http.post(f"/console/numbers/{number.id}/test-call", data={"csrf": csrf_of(page.text)})
        assert forged.status_code == 403
        no_token = await http.post(f"/console/numbers/{number.id}/test-call")
        assert no_token.status_code == 403
        assert call_links((await http.get("/console/calls", params={"number_id": number.id})).text) == []


async def test_test_call_runs_the_test_call_service_and_shows_the_call(
    calling_server: LiveServer, db: Database, world: World, org: OrgCreds, owner: ConsoleUser
) -> None:
    agent = await world.agent(stream_url="wss://agents.example.com/console")
    number = await world.number(world.sandbox, agents=[(agent, None, 1.0)])
    async with httpx.AsyncClient(base_url=calling_server.url, timeout=30) as http:
        await sign_in(http, owner.email, owner.password)
        page = await http.get(f"/console/numbers/{number.id}")
        assert "Test call</button>" in page.text
        bad = await http.post(
            f"/console/numbers/{number.id}/test-call", data={"csrf": csrf_of(page.text), "from": "nobody"}
        )
        assert bad.status_code == 422 and "from" in bad.text
        placed = await http.post(
            f"/console/numbers/{number.id}/test-call",
            data={"csrf": csrf_of(page.text), "from": "+12025550177"},
        )
        assert placed.status_code == 303
        location = placed.headers["location"]
        assert re.fullmatch(r"/console/calls/[0-9a-f-]{36}\?notice=test_call", location)
        shown = await http.get(location)
        assert "Test call placed" in shown.text and "+12025550177" in shown.text
        assert "agent stream" in shown.text and "completed" in shown.text
        steps = re.findall(r"<li><strong>([a-z ]+)</strong>", shown.text)
        assert steps == ["number", "country", "webhook", "agent"]
    async with httpx.AsyncClient(base_url=calling_server.url, headers=org.bearer) as api:
        call_id = location.split("/")[-1].split("?")[0]
        via_api = (await api.get(f"/v1/calls/{call_id}")).json()
    assert via_api["phone_number_id"] == number.id and via_api["status"] == "completed"
    assert via_api["from"] == "+12025550177" and via_api["agent_id"] == agent
