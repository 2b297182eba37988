"""The console as a person uses it, in Debian's Chromium driven by Playwright; and /docs offline.

Few and broad on purpose (each browser test costs seconds): the owner's day (sign in, buy with a
double click, rename, release, import a CSV, download the report, sign out), the viewer's limits
(no change buttons, a forged POST refused, a form without its CSRF token refused, sign-in
attempts limited), and the API docs rendering with every request kept on the server's origin.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from numberplane.kernel.db import Database
from numberplane.tenancy import users
from tests.console.conftest import ConsoleUser, make_user
from tests.routing.world import make_world
from tests.support import AreaCodes, LiveServer, OrgCreds


async def _sign_in(page, user: ConsoleUser) -> None:  # type: ignore[no-untyped-def]
    await page.goto("/console")
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.get_by_label("Email").fill(user.email)
    await page.get_by_label("Password").fill(user.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Numbers")).to_be_visible()


async def test_owner_buys_renames_releases_imports_and_signs_out(
    browser: Browser,
    live_server: LiveServer,
    org: OrgCreds,
    owner: ConsoleUser,
    area_codes: AreaCodes,
    tmp_path: Path,
) -> None:
    context = await browser.new_context(base_url=live_server.url, accept_downloads=True)
    page = await context.new_page()
    await _sign_in(page, owner)

    # Buy: a double click on "Buy" buys one number.
    area = area_codes.take()
    await page.get_by_role("link", name="Buy a number").click()
    await page.get_by_label("Area code").fill(area)
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("button", name="Buy", exact=True).first.dblclick()
    await expect(page.get_by_role("status")).to_have_text("Bought.")
    number_url = page.url.split("?")[0]
    async with httpx.AsyncClient(base_url=live_server.url, headers=org.bearer) as api:
        held = (await api.get("/v1/phone-numbers", params={"area_code": area, "status": "all"})).json()[
            "data"
        ]
    assert len(held) == 1 and held[0]["status"] == "active"

    # Rename.
    await page.get_by_label("Name").fill("Reception")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.get_by_label("Name")).to_have_value("Reception")
    await page.get_by_role("link", name="Numbers", exact=True).click()
    await expect(page.get_by_role("link", name="Reception")).to_be_visible()

    # What would the carrier get (the /v1/route dry run), then release with a confirmation.
    await page.get_by_role("link", name="Reception").click()
    await page.get_by_role("button", name="Preview").click()
    await expect(page.get_by_label("Carrier answer")).to_contain_text("<Response>")
    await page.get_by_role("button", name="Release").click()
    await expect(page.get_by_role("heading", name=re.compile(r"^Release .*\?$"))).to_be_visible()
    await page.get_by_role("button", name="Release").click()
    await expect(page.get_by_role("status")).to_have_text("Released.")
    assert page.url.split("?")[0] == number_url
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)

    # Import a CSV: progress, a summary, and the per-row report (rows numbered as in the file).
    source = tmp_path / "numbers.csv"
    source.write_text(
        "phone_number,name\n+1 720 555 0141,Denver A\nnot a number,Broken\n(720) 555-0142,Denver B\n"
    )
    await page.get_by_role("link", name="Import").click()
    await page.get_by_label("CSV file").set_input_files(str(source))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("status")).to_contain_text(
        "Imported 2, failed 1, of 3 rows", timeout=15_000
    )
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download the report").click()
    saved = await (await download_info.value).path()
    report = list(csv.DictReader(io.StringIO(await asyncio.to_thread(Path(saved).read_text))))
    assert [(r["row"], r["status"]) for r in report] == [("1", "created"), ("2", "failed"), ("3", "created")]
    assert report[1]["error_field"] == "phone_number"

    # Sign out: the cookie the browser had is worthless at once.
    cookie = next(c for c in await context.cookies() if c["name"] == "np_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    async with httpx.AsyncClient(base_url=live_server.url, cookies={"np_session": cookie["value"]}) as old:
        replay = await old.get("/console")
    assert replay.status_code == 303 and "/console/sign-in" in replay.headers["location"]
    await context.close()


async def test_changes_work_without_javascript(
    browser: Browser, live_server: LiveServer, org: OrgCreds, owner: ConsoleUser
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=org.bearer) as api:
        imported = await api.post(
            "/v1/phone-numbers/import", json={"numbers": [{"phone_number": "+17205550160"}]}
        )
    number_id = imported.json()["results"][0]["id"]
    context = await browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = await context.new_page()
    await _sign_in(page, owner)
    await page.goto(f"/console/numbers/{number_id}")
    await page.get_by_label("Name").fill("No-JS line")
    await page.get_by_label("Allowed countries").fill("us, ca")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    async with httpx.AsyncClient(base_url=live_server.url, headers=org.bearer) as api:
        read = (await api.get(f"/v1/phone-numbers/{number_id}")).json()
    assert read["name"] == "No-JS line" and read["allowed_inbound_countries"] == ["US", "CA"]
    await context.close()


async def test_viewer_sees_no_change_buttons_and_cannot_post(
    browser: Browser, live_server: LiveServer, db: Database, org: OrgCreds, viewer: ConsoleUser
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=org.bearer) as api:
        imported = await api.post(
            "/v1/phone-numbers/import", json={"numbers": [{"phone_number": "+17205550150"}]}
        )
    number_id = imported.json()["results"][0]["id"]
    context = await browser.new_context(base_url=live_server.url)
    page = await context.new_page()
    await _sign_in(page, viewer)
    await expect(page.get_by_role("link", name="+17205550150")).to_be_visible()
    await page.goto(f"/console/numbers/{number_id}")
    await expect(page.get_by_label("Name")).to_be_disabled()
    for name in ("Save", "Release"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await page.goto("/console/buy?search=1&area_code=720")
    await expect(page.get_by_role("button", name="Search")).to_be_visible()
    await expect(page.get_by_role("button", name="Buy", exact=True)).to_have_count(0)

    # A forged POST with the viewer's own session and a valid CSRF token: 403, nothing changed.
    csrf = await page.locator("input[name=csrf]").first.input_value()
    forged = await page.request.post(f"/console/numbers/{number_id}/release", form={"csrf": csrf})
    assert forged.status == 403
    # Without the CSRF token (what another site's form would send): 403 too.
    no_token = await page.request.post(f"/console/numbers/{number_id}", form={"name": "x"})
    assert no_token.status == 403 and "CSRF" in await no_token.text()
    async with httpx.AsyncClient(base_url=live_server.url, headers=org.bearer) as api:
        assert (await api.get(f"/v1/phone-numbers/{number_id}")).json()["status"] == "active"
    await context.close()

    # Sign-in attempts are limited: after too many failures even the right password waits.
    target = await make_user(db, org.org_id, "admin")
    context = await browser.new_context(base_url=live_server.url)
    page = await context.new_page()
    await page.goto("/console/sign-in")
    for _ in range(users.MAX_FAILURES_PER_EMAIL):
        await page.get_by_label("Email").fill(target.email)
        await page.get_by_label("Password").fill("wrong password!")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    await page.get_by_label("Password").fill(target.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("too many failed sign-ins")
    await context.close()


async def test_test_call_shows_the_call_its_trace_and_the_chart(
    browser: Browser,
    calling_server: LiveServer,
    db: Database,
    org: OrgCreds,
    owner: ConsoleUser,
    area_codes: AreaCodes,
) -> None:
    world = await make_world(db, org.org_id, calling_server.url, area_codes)
    agent = await world.agent(stream_url="wss://agents.example.com/browser")
    number = await world.number(world.sandbox, agents=[(agent, None, 1.0)], name="Test line")
    context = await browser.new_context(base_url=calling_server.url)
    page = await context.new_page()
    await _sign_in(page, owner)
    await page.get_by_role("link", name="Test line").click()
    chart = page.get_by_role("img", name=re.compile(r"^Calls per day, last 30 days"))
    await expect(chart).to_have_accessible_name(re.compile(r": 0 in all\.$"))

    await page.get_by_role("button", name="Test call").click()
    await expect(page.get_by_role("status")).to_have_text("Test call placed: this is the call it made.")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(number.phone_number)
    trace = page.get_by_role("list", name="Decision trace").get_by_role("listitem")
    await expect(trace).to_have_count(4)
    await expect(trace.first).to_contain_text("number")
    await expect(trace.last).to_contain_text("agent")

    # Back on the number's page the call is among its recent calls and in today's bar.
    await page.get_by_role("link", name=number.phone_number).click()
    await expect(chart).to_have_accessible_name(re.compile(r": 1 in all, most on "))
    await expect(page.get_by_role("table", name="Recent calls").get_by_role("link")).to_have_count(1)
    await page.get_by_role("link", name="Calls", exact=True).click()
    await expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    await context.close()


async def test_api_docs_render_with_every_request_on_the_servers_origin(
    browser: Browser, live_server: LiveServer, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the docs do not touch the database: one backend is enough")
    context = await browser.new_context()
    origin = live_server.url
    reached: list[str] = []  # off-origin requests that got as far as the network (then cut: offline)

    async def offline(route) -> None:  # type: ignore[no-untyped-def]
        reached.append(route.request.url)
        await route.abort("internetdisconnected")

    await context.route(re.compile(r"^(?!" + re.escape(origin) + r")https?://"), offline)
    page = await context.new_page()
    requested: list[str] = []
    blocked: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: blocked.append(request.url))

    await page.goto(origin + "/docs")
    operations = page.locator("#swagger-ui .opblock")
    await expect(operations.first).to_be_visible(timeout=15_000)
    assert await operations.count() > 20
    await expect(
        page.locator("#swagger-ui").get_by_text("/v1/phone-numbers", exact=True).first
    ).to_be_visible()
    assert requested and all(url.startswith((origin, "data:", "blob:")) for url in requested), requested
    assert not reached

    # ReDoc renders too; the one image it always asks a CDN for is refused by the page's CSP.
    await page.goto(origin + "/redoc")
    await expect(page.get_by_role("heading", name="Numberplane").first).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("Buy a number").first).to_be_attached()
    outside = [url for url in requested if not url.startswith((origin, "data:", "blob:"))]
    assert set(outside) <= set(blocked) and not reached, (outside, blocked, reached)
    await context.close()
