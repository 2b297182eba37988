"""GET /v1/calls (filters, keyset paging, tenancy), GET /v1/calls/{id}, a number's stats."""

from __future__ import annotations

import datetime as dt

import httpx

from numberplane.calls import reading
from numberplane.calls.service import DecisionFacts, Observation, write_batch
from numberplane.kernel.db import Database, utcnow
from tests.routing.world import World
from tests.support import OrgCreds


def observed(
    org_id: str,
    number_id: str | None,
    e164: str | None,
    call_id: str,
    *,
    at: dt.datetime,
    outcome: str = "agent_stream",
    status: str = "ringing",
    duration: int | None = None,
    decision_ms: float | None = 1.0,
    agent_id: str | None = None,
    carrier: str = "twilio",
) -> list[Observation]:
    facts = DecisionFacts(
        outcome=outcome, reason="agent", agent_id=agent_id, decision_ms=decision_ms, trace=[]
    )
    first = Observation(
        org_id=org_id,
        carrier=carrier,
        carrier_call_id=call_id,
        at=at,
        phone_number_id=number_id,
        phone_number=e164,
        status="ringing",
        decision=facts,
    )
    if status == "ringing":
        return [first]
    end = at + dt.timedelta(seconds=(duration or 0) + 5)
    return [
        first,
        Observation(
            org_id=org_id,
            carrier=carrier,
            carrier_call_id=call_id,
            at=end,
            status=status,
            duration_s=duration,
        ),
    ]


async def test_list_filters_and_pages_newest_first(
    client: httpx.AsyncClient, db: Database, world: World, org: OrgCreds
) -> None:
    a = await world.number(None)
    b = await world.number(None)
    agent = await world.agent(stream_url="wss://agents.example.com/x")
    now = utcnow()
    batch = []
    for i in range(7):
        batch += observed(
            org.org_id, a.id, a.phone_number, f"pa-{i}", at=now - dt.timedelta(minutes=10 - i), agent_id=agent
        )
    batch += observed(
        org.org_id, b.id, b.phone_number, "pb-0", at=now, outcome="rejected", status="busy", carrier="telnyx"
    )
    await write_batch(db=db, observations=batch)

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"phone_number_id": a.id, "limit": "3", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/calls", params=params, headers=org.bearer)).json()
        seen += [c["carrier_call_id"] for c in body["data"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert seen == [f"pa-{i}" for i in range(6, -1, -1)]

    async def ids(**params: str) -> list[str]:
        response = await client.get(
            "/v1/calls", params={"phone_number_id": f"{a.id}", **params}, headers=org.bearer
        )
        assert response.status_code == 200, response.text
        return [c["carrier_call_id"] for c in response.json()["data"]]

    # The number in another format names the same calls.
    national = "(" + a.phone_number[2:5] + ") " + a.phone_number[5:8] + "-" + a.phone_number[8:]
    by_number = await client.get("/v1/calls", params={"phone_number": national}, headers=org.bearer)
    assert len(by_number.json()["data"]) == 7
    assert await ids(agent_id=agent) == [f"pa-{i}" for i in range(6, -1, -1)]
    assert await ids(status="busy") == []
    since = (
        (now - dt.timedelta(minutes=6, seconds=30)).astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    )
    assert await ids(since=since) == ["pa-6", "pa-5", "pa-4"]
    until = (now - dt.timedelta(minutes=8, seconds=30)).isoformat()
    assert await ids(until=until) == ["pa-1", "pa-0"]
    only_b = await client.get(
        "/v1/calls", params={"status": "busy", "outcome": "rejected", "carrier": "telnyx"}, headers=org.bearer
    )
    assert [c["carrier_call_id"] for c in only_b.json()["data"]] == ["pb-0"]

    bad = await client.get("/v1/calls", params={"status": "done"}, headers=org.bearer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    bad = await client.get("/v1/calls", params={"phone_number": "not a number"}, headers=org.bearer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "phone_number"
    bad = await client.get("/v1/calls", params={"cursor": "garbage!"}, headers=org.bearer)
    assert bad.status_code == 422


async def test_another_orgs_call_is_missing(
    client: httpx.AsyncClient, db: Database, world: World, org: OrgCreds, other_org: OrgCreds
) -> None:
    number = await world.number(None)
    await write_batch(
        db=db, observations=observed(org.org_id, number.id, number.phone_number, "t-1", at=utcnow())
    )
    mine = (await client.get("/v1/calls", params={"phone_number_id": number.id}, headers=org.bearer)).json()
    call_id = mine["data"][0]["id"]
    got = await client.get(f"/v1/calls/{call_id}", headers=org.bearer)
    assert got.status_code == 200 and got.json()["carrier_call_id"] == "t-1"
    foreign = await client.get(f"/v1/calls/{call_id}", headers=other_org.bearer)
    missing = await client.get("/v1/calls/0190a0a0-0000-7000-8000-000000000000", headers=org.bearer)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["code"] == missing.json()["code"] == "call_not_found"
    listed = await client.get("/v1/calls", params={"phone_number_id": number.id}, headers=other_org.bearer)
    assert listed.json()["data"] == []
    stats = await client.get(f"/v1/phone-numbers/{number.id}/stats", headers=other_org.bearer)
    assert stats.status_code == 404


async def test_stats_over_each_window(
    client: httpx.AsyncClient, db: Database, world: World, org: OrgCreds
) -> None:
    number = await world.number(None)
    other = await world.number(None)
    now = utcnow()
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    batch: list[Observation] = []

    def add(call_id: str, ago: dt.timedelta, **kw: object) -> None:
        batch.extend(observed(org.org_id, number.id, number.phone_number, call_id, at=now - ago, **kw))  # type: ignore[arg-type]

    # Last 24 h: 5 calls: 3 answered (5 s, 30 s, 61 s), 1 no answer, 1 rejected never answered.
    add("d1", hour, status="completed", duration=5, decision_ms=2.0)
    add("d2", 2 * hour, status="completed", duration=30, decision_ms=1.0)
    add("d3", 3 * hour, status="completed", duration=61, decision_ms=4.0)
    add("d4", 4 * hour, status="no_answer", decision_ms=3.0, outcome="fallback_number")
    add("d5", 5 * hour, outcome="rejected", decision_ms=100.0)
    # 3 days ago: a fallback; 20 days ago: one more answered call.
    add("w1", 3 * day, outcome="fallback_sip", decision_ms=9.0)
    add("m1", 20 * day, status="completed", duration=8, decision_ms=7.0)
    add("old", 40 * day, status="completed", duration=100)
    batch += observed(org.org_id, other.id, other.phone_number, "elsewhere", at=now - hour)
    await write_batch(db=db, observations=batch)

    async def stats(window: str) -> dict[str, object]:
        response = await client.get(
            f"/v1/phone-numbers/{number.phone_number}/stats", params={"window": window}, headers=org.bearer
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    day_stats = await stats("24h")
    assert day_stats["phone_number_id"] == number.id
    assert {
        k: day_stats[k] for k in ("calls", "answered", "answer_rate", "avg_duration_s", "short_calls")
    } == {
        "calls": 5,
        "answered": 3,
        "answer_rate": 0.6,
        "avg_duration_s": 32.0,
        "short_calls": 1,
    }
    assert (day_stats["fallbacks"], day_stats["rejected"]) == (1, 1)
    # decision_ms sorted: 1, 2, 3, 4, 100 -> nearest rank p50 = 3, p99 = 100.
    assert (day_stats["decision_ms_p50"], day_stats["decision_ms_p99"]) == (3.0, 100.0)
    week = await stats("7d")
    assert (week["calls"], week["fallbacks"], week["answered"]) == (6, 2, 3)
    month = await stats("30d")
    assert (month["calls"], month["answered"], month["short_calls"]) == (7, 4, 2)
    assert month["avg_duration_s"] == round((5 + 30 + 61 + 8) / 4, 2)
    bad = await client.get(
        f"/v1/phone-numbers/{number.id}/stats", params={"window": "1y"}, headers=org.bearer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "window"
    empty = await world.number(None)
    nothing = await client.get(f"/v1/phone-numbers/{empty.id}/stats", headers=org.bearer)
    assert nothing.json()["calls"] == 0 and nothing.json()["answer_rate"] is None
    assert nothing.json()["decision_ms_p50"] is None


async def test_stats_read_only_the_covering_index(
    db: Database, backend: str, world: World, org: OrgCreds
) -> None:
    """The plan, not the time (bench/calls.py measures that): a number's stats never visit the table."""
    number, other = await world.number(None), await world.number(None)
    until = utcnow()
    await write_batch(
        db=db,
        observations=[
            observation
            for i in range(40)
            for pn in (number, other)
            for observation in observed(
                org.org_id, pn.id, pn.phone_number, f"{pn.id}-{i}", at=until - dt.timedelta(hours=i)
            )
        ],
    )
    if backend == "postgresql":
        # As on a live database: autovacuum has marked the pages all-visible and gathered statistics.
        async with db.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            await conn.exec_driver_sql("VACUUM ANALYZE calls")
    scope = reading.stats_scope(
        org_id=org.org_id, number_id=number.id, since=until - reading.WINDOWS["30d"], until=until
    )
    async with db.session() as session:
        conn = await session.connection()
        compiled = reading.stats_select(dialect=backend, scope=scope).compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        params = tuple(
            v.isoformat() if isinstance(v, dt.datetime) else v
            for v in (compiled.params[name] for name in compiled.positiontup or ())
        )
        if backend == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
            plan = " ".join(str(row[-1]) for row in rows)
            assert "COVERING INDEX ix_calls_phone_number_id_started_at" in plan, plan
        else:
            # On a table this small reading it all is cheaper: rule that out to see the plan a busy
            # number gets (bench/calls.py shows the planner choosing it on its own at scale).
            for scan in ("seqscan", "bitmapscan"):
                await conn.exec_driver_sql(f"SET LOCAL enable_{scan} = off")
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            rows = await conn.exec_driver_sql(f"EXPLAIN {compiled}", params)
            plan = "\n".join(str(row[0]) for row in rows)
            # The partitions holding the calls are read from the index alone (an empty one may
            # be read any way: its statistics say there is nothing there).
            assert any(
                "Index Only Scan using" in line and "phone_number_id_started_at" in line
                for line in plan.splitlines()
            ), plan
