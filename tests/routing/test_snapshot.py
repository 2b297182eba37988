"""Loading a RouteSnapshot: one query, pinned or latest versions, tenancy of agents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from numberplane.kernel.db import Database
from numberplane.routing import snapshot
from tests.routing.world import World


async def load(db: Database, e164: str) -> tuple[snapshot.RouteSnapshot | None, int]:
    statements: list[Any] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.sync_engine, "before_cursor_execute", count)
    try:
        async with db.engine.connect() as conn:
            snap = await snapshot.load(conn, e164)
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", count)
    return snap, len([s for s in statements if "phone_numbers" in s])


async def test_one_query_with_pinned_and_latest_versions(
    db: Database, world: World, other_world: World
) -> None:
    latest = await world.agent(stream_url="wss://a.example.com/v3", versions=3)
    pinned = await world.agent(
        stream_url="wss://b.example.com/v2",
        versions=2,
        version_connects={1: {"sip_uri": "sip:v1@b.example.com"}},
    )
    missing_version = await world.agent(stream_url="wss://c.example.com", versions=1)
    foreign = await other_world.agent(stream_url="wss://foreign.example.com")
    number = await world.number(
        world.accounts["twilio"],
        agents=[(latest, None, 0.25), (pinned, 1, 0.25), (missing_version, 9, 0.25), (foreign, None, 0.25)],
        allowed_inbound_countries=["us", "GB"],
        inbound_webhook_url="https://hook.example.com/x",
        inbound_webhook_timeout_ms=3000,
        fallback={"number": "+14155550177"},
        call_handler={"type": "agents"},
        outbound=True,
        callback_forwarding_number="+14155550188",
        language="en-US",
    )
    snap, queries = await load(db, number.phone_number)
    assert queries == 1
    assert snap is not None
    assert (snap.number_id, snap.org_id, snap.e164, snap.status) == (
        number.id,
        world.org_id,
        number.phone_number,
        "active",
    )
    assert snap.carrier_account_id == world.accounts["twilio"].id
    assert snap.allowed_inbound_countries == ("US", "GB")
    assert snap.inbound_webhook_timeout_ms == 3000 and snap.inbound_webhook_attempts == 3
    assert snap.fallback_number == "+14155550177" and snap.fallback_sip_uri is None
    assert snap.outbound and snap.callback_forwarding_number == "+14155550188"
    assert snap.call_handler is not None and snap.call_handler.type == "agents"
    assert [(a.agent_id, a.version, a.stream_url, a.sip_uri, a.pinned) for a in snap.agents] == [
        (latest, 3, "wss://a.example.com/v3", None, False),
        (pinned, 1, None, "sip:v1@b.example.com", True),
    ]


async def test_defaults_and_absent_numbers(db: Database, world: World) -> None:
    number = await world.number(world.accounts["twilio"])
    snap, _ = await load(db, number.phone_number)
    assert snap is not None
    assert snap.agents == () and snap.allowed_inbound_countries is None and snap.call_handler is None
    assert snap.inbound_webhook_timeout_ms == 10_000
    released = await world.number(world.accounts["twilio"], status="released")
    assert (await load(db, released.phone_number))[0] is None
    assert (await load(db, world.fresh_number()))[0] is None


async def test_a_released_number_and_its_new_holder(db: Database, world: World, other_world: World) -> None:
    old = await world.number(world.accounts["twilio"], status="released")
    new = await other_world.number(other_world.accounts["twilio"], e164=old.phone_number)
    snap, _ = await load(db, old.phone_number)
    assert snap is not None and snap.number_id == new.id and snap.org_id == other_world.org_id
