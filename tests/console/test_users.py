"""Console users and sessions over HTTP (no browser): cookies, sign-out, removal, CSRF, roles,
sign-in limits, audit as the person, tenancy. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import httpx

from numberplane.app import create_app
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.settings import Settings
from numberplane.tenancy import service as tenancy_service
from numberplane.tenancy import users
from tests.console.conftest import PASSWORD, ConsoleUser, console_client, csrf_of, make_user, sign_in
from tests.support import OrgCreds


async def test_sign_in_cookie_and_sign_out_ends_the_session(app, owner: ConsoleUser) -> None:  # type: ignore[no-untyped-def]
    async with console_client(app) as http:
        stranger = await http.get("/console")
        assert stranger.status_code == 303
        assert stranger.headers["location"].startswith("/console/sign-in")
        signed = await sign_in(http, owner.email, owner.password)
        assert signed.status_code == 303 and signed.headers["location"] == "/console"
        cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith("np_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        token = http.cookies["np_session"]
        home = await http.get("/console")
        assert home.status_code == 200 and owner.email in home.text
        out = await http.post("/console/sign-out", data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303
    async with console_client(app) as replay:  # the old cookie, presented again after sign-out
        replay.cookies.set("np_session", token, path="/console")
        again = await replay.get("/console")
        assert again.status_code == 303 and "/console/sign-in" in again.headers["location"]


async def test_secure_cookie_when_the_public_url_is_https(
    settings: Settings, db: Database, owner: ConsoleUser
) -> None:
    https_app = create_app(
        settings=settings.model_copy(update={"public_url": "https://np.example.com"}), db=db
    )
    async with console_client(https_app, scheme="https") as http:
        signed = await sign_in(http, owner.email, owner.password)
        cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith("np_session="))
        assert "Secure" in cookie and "HttpOnly" in cookie


async def test_removing_a_user_ends_their_sessions_at_once(app, db: Database, org: OrgCreds) -> None:  # type: ignore[no-untyped-def]
    admin = await make_user(db, org.org_id, "admin")
    async with console_client(app) as http:
        assert (await sign_in(http, admin.email, admin.password)).status_code == 303
        assert (await http.get("/console")).status_code == 200
        async with db.uow(Actor.cli()) as uow:
            await users.remove_user(uow=uow, user=admin.email)
            await uow.commit()
        gone = await http.get("/console")
        assert gone.status_code == 303 and "/console/sign-in" in gone.headers["location"]
        again = await sign_in(http, admin.email, admin.password)
        assert again.status_code == 401


async def test_forms_without_the_csrf_token_are_refused(app, owner: ConsoleUser) -> None:  # type: ignore[no-untyped-def]
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        before = await http.get("/console/api-keys")
        forged = await http.post("/console/api-keys", data={"csrf": "forged", "name": "sneaky"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert forged.headers["content-type"].startswith("text/html")
        missing = await http.post("/console/api-keys", data={"name": "sneaky"})
        assert missing.status_code == 403
        after = await http.get("/console/api-keys")
        assert after.text.count("<tr>") == before.text.count("<tr>") and "sneaky" not in after.text
    async with console_client(app) as fresh:  # the sign-in form's token must match its cookie
        page = await fresh.get("/console/sign-in")
        fresh.cookies.clear()
        refused = await fresh.post(
            "/console/sign-in",
            data={"csrf": csrf_of(page.text), "email": owner.email, "password": owner.password},
        )
        assert refused.status_code == 403 and "np_session" not in refused.cookies


async def test_a_viewer_sees_but_a_forged_post_is_403(  # type: ignore[no-untyped-def]
    app, db: Database, org: OrgCreds, viewer: ConsoleUser
) -> None:
    keys_before = await tenancy_service.list_keys(db=db, org_id=org.org_id)
    async with console_client(app) as http:
        await sign_in(http, viewer.email, viewer.password)
        page = await http.get("/console/api-keys")
        assert page.status_code == 200 and org.key_id in page.text
        assert ">Create key</button>" not in page.text and ">Revoke</button>" not in page.text
        forged = await http.post("/console/api-keys", data={"csrf": csrf_of(page.text), "name": "x"})
        assert forged.status_code == 403
        revoke = await http.post(f"/console/api-keys/{org.key_id}/revoke", data={"csrf": csrf_of(page.text)})
        assert revoke.status_code == 403
    assert await tenancy_service.list_keys(db=db, org_id=org.org_id) == keys_before


async def test_failed_sign_ins_are_limited_per_email(app, owner: ConsoleUser) -> None:  # type: ignore[no-untyped-def]
    async with console_client(app, address="10.9.0.1") as http:
        for _ in range(users.MAX_FAILURES_PER_EMAIL):
            wrong = await sign_in(http, owner.email, "not the password")
            assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        limited = await sign_in(http, owner.email, owner.password)  # even the right password now
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "too many failed sign-ins" in limited.text
    async with console_client(app, address="10.9.0.2") as other:  # the limit is the email's
        assert (await sign_in(other, owner.email, owner.password)).status_code == 429


async def test_failed_sign_ins_are_limited_per_address(app, db: Database, org: OrgCreds) -> None:  # type: ignore[no-untyped-def]
    person = await make_user(db, org.org_id, "viewer")
    async with console_client(app, address="10.9.1.1") as http:
        for i in range(users.MAX_FAILURES_PER_ADDRESS):
            assert (await sign_in(http, f"guess{i}@example.com", "guess")).status_code == 401
        assert (await sign_in(http, person.email, PASSWORD)).status_code == 429
    async with console_client(app, address="10.9.1.2") as elsewhere:
        assert (await sign_in(elsewhere, person.email, PASSWORD)).status_code == 303


async def test_console_changes_are_audited_as_the_person(  # type: ignore[no-untyped-def]
    app, client: httpx.AsyncClient, org: OrgCreds, owner: ConsoleUser
) -> None:
    imported = await client.post(
        "/v1/phone-numbers/import", json={"numbers": [{"phone_number": "+13125550177"}]}, headers=org.bearer
    )
    number_id = imported.json()["results"][0]["id"]
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        page = await http.get(f"/console/numbers/{number_id}")
        saved = await http.post(
            f"/console/numbers/{number_id}", data={"csrf": csrf_of(page.text), "name": "Chicago desk"}
        )
        assert saved.status_code == 303
    read = await client.get(f"/v1/phone-numbers/{number_id}", headers=org.bearer)
    assert read.json()["name"] == "Chicago desk"
    trail = await client.get(
        "/v1/audit-events", params={"target_id": number_id, "via": "console"}, headers=org.bearer
    )
    events = trail.json()["data"]
    assert events and events[0]["actor_id"] == owner.email and events[0]["actor_type"] == "user"


async def test_another_orgs_number_answers_like_a_missing_one(  # type: ignore[no-untyped-def]
    app, client: httpx.AsyncClient, other_org: OrgCreds, owner: ConsoleUser
) -> None:
    theirs = await client.post(
        "/v1/phone-numbers/import",
        json={"numbers": [{"phone_number": "+13125550188"}]},
        headers=other_org.bearer,
    )
    their_id = theirs.json()["results"][0]["id"]
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        foreign = await http.get(f"/console/numbers/{their_id}")
        missing = await http.get("/console/numbers/01a00000-0000-7000-8000-000000000000")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.headers["content-type"].startswith("text/html")
        assert "not found" in foreign.text and "3125550188" not in foreign.text
        same = foreign.text.replace(their_id, "ID").split("Request req_")[0]
        assert (
            same
            == missing.text.replace("01a00000-0000-7000-8000-000000000000", "ID").split("Request req_")[0]
        )


async def test_a_rare_match_is_found_window_by_window(  # type: ignore[no-untyped-def]
    app, client: httpx.AsyncClient, org: OrgCreds, owner: ConsoleUser, monkeypatch
) -> None:
    from numberplane.console import numbers as console_numbers

    monkeypatch.setattr(console_numbers, "SCAN_WINDOW", 3)  # 100,000 numbers in miniature
    rows = [{"phone_number": f"+1312555{i:04d}", "name": f"Hay {i}"} for i in range(301, 308)]
    rows[0]["name"] = "Needle"  # the oldest of seven
    imported = await client.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=org.bearer)
    assert imported.json()["created"] == 7
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        url = "/console?q=needle"
        seen = []
        for _ in range(5):  # windows of 3: the needle is in the third
            page = await http.get(url)
            assert page.status_code == 200
            seen.extend(re.findall(r">(Needle)</a>", page.text))
            older = re.search(r'<a href="([^"]+)" rel="next">Search older numbers</a>', page.text)
            if older is None:
                break
            url = older.group(1).replace("&amp;", "&")
        assert seen == ["Needle"]


async def test_bad_form_input_names_the_field_and_changes_nothing(  # type: ignore[no-untyped-def]
    app, client: httpx.AsyncClient, org: OrgCreds, owner: ConsoleUser
) -> None:
    imported = await client.post(
        "/v1/phone-numbers/import",
        json={"numbers": [{"phone_number": "+13125550199", "name": "Kept"}]},
        headers=org.bearer,
    )
    number_id = imported.json()["results"][0]["id"]
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        page = await http.get(f"/console/numbers/{number_id}")
        bad = await http.post(
            f"/console/numbers/{number_id}",
            data={"csrf": csrf_of(page.text), "name": "Changed", "fallback": "not a number"},
        )
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
        assert "<strong>fallback" in bad.text
    assert (await client.get(f"/v1/phone-numbers/{number_id}", headers=org.bearer)).json()["name"] == "Kept"


async def test_the_number_form_sets_agents_weights_sip_caller_id_and_webhook(  # type: ignore[no-untyped-def]
    app, client: httpx.AsyncClient, org: OrgCreds, owner: ConsoleUser
) -> None:
    agents = [
        (await client.post("/v1/agents", json={"name": f"Agent {i}"}, headers=org.bearer)).json()["id"]
        for i in (1, 2)
    ]
    imported = await client.post(
        "/v1/phone-numbers/import", json={"numbers": [{"phone_number": "+13125550166"}]}, headers=org.bearer
    )
    number_id = imported.json()["results"][0]["id"]
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        page = await http.get(f"/console/numbers/{number_id}")
        form = {
            "csrf": csrf_of(page.text),
            "agent_0": agents[0],
            "weight_0": "0.75",
            "agent_1": agents[1],
            "weight_1": "0.25",
            "inbound_webhook_url": "https://hooks.example.com/inbound",
            "fallback": "sip:desk@example.com",
            "sip_endpoint": "sip.provider.example.com",
            "verified_caller_id": "+1 312 555 0100",
        }
        assert (await http.post(f"/console/numbers/{number_id}", data=form)).status_code == 303
        again = await http.get(f"/console/numbers/{number_id}")  # the form shows what was saved
        assert 'value="0.75"' in again.text and 'value="sip.provider.example.com"' in again.text
    read = (await client.get(f"/v1/phone-numbers/{number_id}", headers=org.bearer)).json()
    assert [(b["agent_id"], b["weight"]) for b in read["inbound_agents"]] == [
        (agents[0], 0.75),
        (agents[1], 0.25),
    ]
    assert read["inbound_webhook_url"] == "https://hooks.example.com/inbound"
    assert (
        read["fallback"] == {"sip_uri": "sip:desk@example.com"}
        or read["fallback"]["sip_uri"] == "sip:desk@example.com"
    )
    assert read["sip_inbound"]["endpoint"] == "sip.provider.example.com"
    assert read["verified_caller_id"] == "+13125550100"
