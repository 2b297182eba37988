"""Webhook delivery end to end: a real receiver on loopback, the real worker, real signatures."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from numberplane.events.worker import Worker
from numberplane.kernel.db import Database
from numberplane.kernel.ids import new_id
from numberplane.kernel.net import BlockedURL, check_url
from tests.events.conftest import (
    FAST,
    Received,
    Receiver,
    all_settled,
    create_endpoint,
    deliveries,
    emit_events,
)
from tests.support import OrgCreds, wait_for


def first_arrivals(received: list[Received]) -> dict[str, list[str]]:
    """Per subject, event ids in the order they first arrived."""
    seen: set[str] = set()
    out: dict[str, list[str]] = defaultdict(list)
    for r in sorted(received, key=lambda r: r.started):
        if r.webhook_id in seen:
            continue
        seen.add(r.webhook_id)
        payload = json.loads(r.body)
        out[f"{payload['subject']['type']}:{payload['subject']['id']}"].append(r.webhook_id)
    return out


async def test_receiver_down_then_back_gets_every_event_in_order_signed(
    db: Database,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    worker: Worker,
    cleanup_endpoints: list[str],
) -> None:
    endpoint = await create_endpoint(client, org, receiver.url("hook"), cleanup_endpoints)
    secret = endpoint["secret"]
    receiver.stop()  # down: connection refused

    subjects = [new_id() for _ in range(3)]
    emitted = await emit_events(db, org.org_id, subjects, per_subject=4)
    # Events through the real API too: an agent created then updated twice.
    agent = await client.post("/v1/agents", json={"name": "Ada"}, headers=org.bearer)
    assert agent.status_code == 201, agent.text
    for name in ("Ada 2", "Ada 3"):
        assert (
            await client.patch(f"/v1/agents/{agent.json()['id']}", json={"name": name}, headers=org.bearer)
        ).status_code == 200
    expected = len(emitted) + 3

    worker.start()
    # Every delivery fails a few times while the receiver is down...
    await wait_for(
        lambda: _all_attempted(db, endpoint["id"], expected, at_least=2), timeout=30, interval=0.05
    )
    rows = await deliveries(db, endpoint["id"])
    assert all(r.status == "pending" for r in rows)
    assert all(r.last_error for r in rows if r.attempts)
    receiver.start()  # ...and back up.
    await wait_for(lambda: all_settled(db, endpoint["id"], expected), timeout=60, interval=0.1)

    got = receiver.ok()
    ids = {r.webhook_id for r in got}
    assert {event_id for _, event_id in emitted} <= ids
    assert len(ids) == expected
    # In order per subject (by first arrival).
    order = first_arrivals(got)
    for subject in subjects:
        assert order[f"phone_number:{subject}"] == [e for s, e in emitted if s == subject]
    agent_events = order[f"agent:{agent.json()['id']}"]
    assert [
        json.loads(r.body)["type"]
        for r in sorted(got, key=lambda r: r.started)
        if r.webhook_id in agent_events
    ][:3] == ["agent.created", "agent.updated", "agent.updated"]
    # Every request verifies with the standardwebhooks library, and its payload is the event.
    for r in got:
        payload = Webhook(secret).verify(r.body, r.headers)
        assert payload["id"] == r.webhook_id
        assert set(payload) >= {"id", "type", "created_at", "data"}
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(got[0].body, got[0].headers)
    tampered = got[0].body.replace(b'"data"', b'"dat4"')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got[0].headers)

    # The API lists them with their status codes.
    listed = await client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?limit=5", headers=org.bearer
    )
    assert listed.status_code == 200
    page = listed.json()
    assert len(page["data"]) == 5 and page["has_more"] is True
    assert all(d["status"] == "succeeded" and d["last_status_code"] == 200 for d in page["data"])
    assert all(d["attempts"] >= 1 and d["delivered_at"] for d in page["data"])
    seen = [d["id"] for d in page["data"]]
    while page["has_more"]:
        page = (
            await client.get(
                f"/v1/webhook-endpoints/{endpoint['id']}/deliveries",
                params={"limit": 5, "cursor": page["next_cursor"]},
                headers=org.bearer,
            )
        ).json()
        seen += [d["id"] for d in page["data"]]
    assert len(seen) == len(set(seen)) == expected
    assert seen == sorted(seen, reverse=True)


async def _all_attempted(db: Database, endpoint_id: str, expected: int, at_least: int) -> bool:
    rows = await deliveries(db, endpoint_id)
    # Ordering holds later events back, so only the head of each subject gets attempted.
    heads = {r.subject_key: r for r in reversed(rows)}
    return len(rows) == expected and all(r.attempts >= at_least for r in heads.values())


async def test_event_type_filter_disabled_endpoint_and_other_orgs(
    db: Database,
    client: httpx.AsyncClient,
    org: OrgCreds,
    other_org: OrgCreds,
    receiver: Receiver,
    worker: Worker,
    cleanup_endpoints: list[str],
) -> None:
    await create_endpoint(
        client, org, receiver.url("released"), cleanup_endpoints, event_types=["phone_number.released"]
    )
    disabled = await create_endpoint(client, org, receiver.url("disabled"), cleanup_endpoints, enabled=False)
    foreign = await create_endpoint(client, other_org, receiver.url("foreign"), cleanup_endpoints)
    subject = new_id()
    updated = await emit_events(db, org.org_id, [subject], 2)
    released = await emit_events(db, org.org_id, [subject], 1, type="phone_number.released")
    await worker.run_until_idle()
    assert receiver.ids("/released") == {released[0][1]}
    assert not receiver.ok("/disabled") and not receiver.ok("/foreign")
    assert await deliveries(db, disabled["id"]) == []
    assert await deliveries(db, foreign["id"]) == []
    assert updated  # emitted, filtered out


async def test_failing_endpoint_gives_up_then_resend_delivers(
    db: Database,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    endpoint = await create_endpoint(client, org, receiver.url("flaky"), cleanup_endpoints)
    receiver.fail_paths.add("flaky")
    [(_, event_id)] = await emit_events(db, org.org_id, [new_id()], 1)
    short = Worker(db, replace(FAST, retry_window=0.4))
    short.start()
    try:
        await wait_for(lambda: all_settled(db, endpoint["id"], 1, "failed"), timeout=30)
        [row] = await deliveries(db, endpoint["id"])
        assert row.last_status_code == 500 and row.attempts >= 2 and row.last_error == "HTTP 500"

        receiver.fail_paths.clear()
        resent = await client.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{row.id}/resend", headers=org.bearer
        )
        assert resent.status_code == 202, resent.text
        assert resent.json()["status"] == "pending" and resent.json()["replay"] is True
        await wait_for(lambda: all_settled(db, endpoint["id"], 1), timeout=30)
    finally:
        await short.aclose()
    assert [r.status for r in receiver.received if r.webhook_id == event_id][-1] == 200
    assert len({r.webhook_id for r in receiver.received}) == 1  # the same webhook-id every time
    one = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{row.id}", headers=org.bearer)
    assert one.json()["status"] == "succeeded" and one.json()["last_status_code"] == 200


async def test_private_addresses_are_refused_without_the_setting(
    db: Database,
    client: httpx.AsyncClient,
    org: OrgCreds,
    receiver: Receiver,
    cleanup_endpoints: list[str],
) -> None:
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://localhost/x", "http://[::1]/x"):
        with pytest.raises(BlockedURL):
            await check_url(url, allow_private=False)
    await check_url("http://127.0.0.1:9/x", allow_private=True)

    # An endpoint saved while private URLs were allowed; this worker does not allow them.
    endpoint = await create_endpoint(client, org, receiver.url("private"), cleanup_endpoints)
    await emit_events(db, org.org_id, [new_id()], 1)
    strict = Worker(db, replace(FAST, allow_private=False))
    try:
        await strict.run_until_idle()
    finally:
        await strict.aclose()
    [row] = await deliveries(db, endpoint["id"])
    assert row.status == "failed"
    assert row.last_error is not None and row.last_error.startswith("blocked:")
    assert "loopback" in row.last_error or "private" in row.last_error
    assert receiver.received == []
