"""/v1/webhook-endpoints and /v1/audit-events: CRUD, tenancy, secrets once, filters, pagination."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from numberplane.app import create_app
from numberplane.events.models import WebhookEndpoint
from numberplane.kernel import crypto
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.outbox import REDACTED, audit
from numberplane.kernel.settings import Settings
from tests.events.conftest import create_endpoint, deliveries, emit_events
from tests.support import OrgCreds


async def test_endpoint_crud_secret_once_and_audited(
    db: Database, client: httpx.AsyncClient, org: OrgCreds, cleanup_endpoints: list[str]
) -> None:
    created = await create_endpoint(
        client,
        org,
        "https://hooks.example.com/numberplane",
        cleanup_endpoints,
        event_types=["phone_number.created", "phone_number.released", "phone_number.created"],
        description="prod",
    )
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["event_types"] == ["phone_number.created", "phone_number.released"]
    assert created["enabled"] is True
    async with db.session() as session:
        row = await session.get(WebhookEndpoint, created["id"])
        assert row is not None and secret not in row.secret_enc
        assert crypto.decrypt(row.secret_enc) == secret

    got = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=org.bearer)
    assert got.status_code == 200
    assert "secret" not in got.json() and secret not in got.text
    listed = await client.get("/v1/webhook-endpoints", headers=org.bearer)
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    assert secret not in listed.text

    patched = await client.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"url": "https://hooks.example.com/v2", "event_types": [], "enabled": False},
        headers=org.bearer,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["url"] == "https://hooks.example.com/v2"
    assert patched.json()["event_types"] == [] and patched.json()["enabled"] is False

    assert (
        await client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=org.bearer)
    ).status_code == 204
    assert (await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=org.bearer)).status_code == 404

    trail = (
        await client.get(
            "/v1/audit-events",
            params={"target_type": "webhook_endpoint", "target_id": created["id"]},
            headers=org.bearer,
        )
    ).json()["data"]
    assert [a["action"] for a in trail] == [
        "webhook_endpoint.deleted",
        "webhook_endpoint.updated",
        "webhook_endpoint.created",
    ]
    deleted, updated, made = trail
    assert made["after"]["signing_secret"] == REDACTED and made["before"] is None
    assert secret not in str(trail)
    assert updated["before"]["url"] == "https://hooks.example.com/numberplane"
    assert updated["after"]["enabled"] is False
    assert deleted["before"]["url"] == "https://hooks.example.com/v2" and deleted["after"] is None
    for entry in trail:
        assert entry["actor_type"] == "api_key" and entry["actor_id"] == org.key_id
        assert entry["via"] == "v1" and entry["org_id"] == org.org_id and entry["request_id"]


async def test_another_orgs_endpoint_is_a_404(
    db: Database,
    client: httpx.AsyncClient,
    org: OrgCreds,
    other_org: OrgCreds,
    cleanup_endpoints: list[str],
) -> None:
    mine = await create_endpoint(client, org, "https://hooks.example.com/a", cleanup_endpoints)
    await emit_events(db, org.org_id, ["subject-1"], 1)
    from numberplane.events.worker import Worker
    from tests.events.conftest import FAST

    # Fan out only (no delivery attempt needed): a delivery row exists for the owner to see.
    fanner = Worker(db, FAST)
    while await fanner.fan_out():  # other tests' events may be ahead of ours in the outbox
        pass
    await fanner.aclose()
    [delivery] = await deliveries(db, mine["id"])

    base = f"/v1/webhook-endpoints/{mine['id']}"
    missing = "/v1/webhook-endpoints/01a00000-0000-7000-8000-000000000000"
    for path in (base, missing):
        for method, url, body in (
            ("GET", path, None),
            ("PATCH", path, {"enabled": False}),
            ("GET", f"{path}/deliveries", None),
            ("GET", f"{path}/deliveries/{delivery.id}", None),
            ("POST", f"{path}/deliveries/{delivery.id}/resend", None),
            ("DELETE", path, None),
        ):
            response = await client.request(method, url, json=body, headers=other_org.bearer)
            assert response.status_code == 404, (method, url, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "webhook_endpoint_not_found"
    assert (await client.get("/v1/webhook-endpoints", headers=other_org.bearer)).json()["data"] == []
    # Still there, untouched, for its owner.
    owner = await client.get(base, headers=org.bearer)
    assert owner.json()["enabled"] is True
    page = (await client.get(f"{base}/deliveries", headers=org.bearer)).json()
    assert [d["id"] for d in page["data"]] == [delivery.id]
    assert page["data"][0]["event_id"] == delivery.event_id and page["data"][0]["status"] == "pending"
    assert (await client.get(base, headers={})).status_code == 401


async def test_endpoint_validation(
    client: httpx.AsyncClient, org: OrgCreds, settings: Settings, db: Database
) -> None:
    bad = [
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "https://hooks.example.com/x", "event_types": ["phone_number.exploded"]},
        {"url": "https://hooks.example.com/x", "secret": "mine"},
    ]
    for body in bad:
        response = await client.post("/v1/webhook-endpoints", json=body, headers=org.bearer)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_failed"
    strict_app = create_app(settings=settings.model_copy(update={"allow_private_urls": False}), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=strict_app), base_url="http://t"
    ) as strict:
        for url in ("http://127.0.0.1:8080/hook", "http://192.168.1.10/hook", "http://localhost/hook"):
            response = await strict.post("/v1/webhook-endpoints", json={"url": url}, headers=org.bearer)
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["code"] == "blocked_url"
    listed = await client.get("/v1/webhook-endpoints", headers=org.bearer)
    assert listed.json()["data"] == []


async def test_audit_log_filters_pagination_and_append_only(
    db: Database, client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds
) -> None:
    await asyncio.sleep(0.003)  # the fixtures' own audit rows (org and key creation) fall before this
    start = dt.datetime.now(dt.UTC)
    cli = Actor.cli(org.org_id)
    key = Actor(kind="api_key", id=org.key_id, org_id=org.org_id, via="retell", request_id="req_1")
    async with db.uow(key) as uow:
        for n in range(7):
            audit(
                uow,
                action="phone_number.updated" if n % 2 else "agent.updated",
                target_type="phone_number" if n % 2 else "agent",
                target_id=f"t{n % 3}",
                before={"name": f"v{n}", "sip": {"password": "hunter2"}},
                after={"name": f"v{n + 1}", "auth_token": "tok"},
            )
        await uow.commit()
    async with db.uow(cli) as uow:
        audit(uow, action="agent.deleted", target_type="agent", target_id="t9")
        await uow.commit()
    async with db.uow(Actor(kind="api_key", id=other_org.key_id, org_id=other_org.org_id)) as uow:
        audit(uow, action="agent.deleted", target_type="agent", target_id="foreign")
        await uow.commit()

    async def fetch(**params: object) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        cursor = None
        for _ in range(50):
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await client.get("/v1/audit-events", params=query, headers=org.bearer)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["data"]) <= 2
            items += page["data"]
            if not page["has_more"]:
                return items
            cursor = page["next_cursor"]
        raise AssertionError("pagination did not end")

    since = {"since": start.isoformat()}
    everything = await fetch(**since)
    assert len(everything) == 8
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 8  # newest first, no repeats
    assert "foreign" not in str(everything)  # another org's trail is invisible
    assert len(await fetch(action="phone_number.updated", **since)) == 3
    assert len(await fetch(target_type="agent", **since)) == 5
    assert {e["target_id"] for e in await fetch(target_type="agent", target_id="t0", **since)} == {"t0"}
    assert len(await fetch(actor_id=org.key_id, **since)) == 7
    assert len(await fetch(via="retell", **since)) == 7
    assert [e["action"] for e in await fetch(via="cli", **since)] == ["agent.deleted"]
    assert await fetch(until=start.isoformat(), action="agent.deleted", target_id="t9") == []
    assert len(await fetch(since=start.isoformat(), until=(start + dt.timedelta(hours=1)).isoformat())) == 8

    redacted = await fetch(via="retell", **since)
    for entry in redacted:
        assert entry["before"]["sip"]["password"] == REDACTED  # type: ignore[index]
        assert entry["after"]["auth_token"] == REDACTED  # type: ignore[index]
        assert entry["actor_id"] == org.key_id and entry["request_id"] == "req_1"
    assert "hunter2" not in str(everything)

    one = everything[0]
    got = await client.get(f"/v1/audit-events/{one['id']}", headers=org.bearer)
    assert got.json() == one
    assert (await client.get(f"/v1/audit-events/{one['id']}", headers=other_org.bearer)).status_code == 404
    for method in ("DELETE", "PATCH", "PUT"):
        response = await client.request(method, f"/v1/audit-events/{one['id']}", headers=org.bearer)
        assert response.status_code == 405
    assert (await client.post("/v1/audit-events", json={}, headers=org.bearer)).status_code == 405
    bad = await client.get("/v1/audit-events", params={"cursor": "garbage!"}, headers=org.bearer)
    assert bad.status_code == 422


async def test_changes_through_v1_are_in_the_audit_log_with_the_right_actor(
    client: httpx.AsyncClient, org: OrgCreds
) -> None:
    agent = await client.post(
        "/v1/agents", json={"name": "Audit me"}, headers={**org.bearer, "X-Request-Id": "req-audit-1"}
    )
    assert agent.status_code == 201
    trail = (
        await client.get("/v1/audit-events", params={"target_id": agent.json()["id"]}, headers=org.bearer)
    ).json()["data"]
    assert [(a["action"], a["actor_id"], a["via"], a["request_id"]) for a in trail] == [
        ("agent.created", org.key_id, "v1", "req-audit-1")
    ]
    assert trail[0]["after"]["name"] == "Audit me"
