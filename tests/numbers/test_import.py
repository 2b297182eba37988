"""Import: one row or 100,000; each row succeeds or fails on its own with a reason."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from numberplane.kernel.db import Database
from numberplane.kernel.outbox import OutboxEvent
from numberplane.numbers.models import PhoneNumber
from tests.support import OrgCreds


def _valid(count: int, exchange: str) -> list[str]:
    areas = ["212", "213", "303", "312", "404", "415", "512", "617", "646", "702", "713", "818"]
    out = []
    for area in areas:
        for line in range(10_000):
            out.append(f"+1{area}{exchange}{line:04d}")
            if len(out) == count:
                return out
    raise AssertionError("not enough numbers")


async def test_a_100k_row_import_with_one_percent_bad_rows(
    client: httpx.AsyncClient, db: Database, org: OrgCreds
) -> None:
    agent = (await client.post("/v1/agents", json={"name": "Bulk"}, headers=org.bearer)).json()
    good = _valid(99_000, "345")
    rows: list[dict] = []
    expected: dict[int, tuple[str, str]] = {}  # index -> (status, error code)
    bad_kinds = ["invalid_phone_number", "duplicate", "agent_not_found", "invalid"]
    g = 0
    for index in range(100_000):
        if index % 100 == 37:  # exactly 1,000 bad rows, spread through the batch
            kind = bad_kinds[(index // 100) % 4]
            if kind == "invalid_phone_number":
                rows.append({"phone_number": f"+1555{index:07d}"[:9]})
            elif kind == "duplicate":
                rows.append({"phone_number": rows[index - 1]["phone_number"]})
            elif kind == "agent_not_found":
                rows.append(
                    {
                        "phone_number": f"+1212456{index // 100:04d}",
                        "inbound_agents": [{"agent_id": "missing-agent"}],
                    }
                )
            else:
                rows.append({"phone_number": "+14155550100", "language": "not a language"})
            expected[index] = ("failed", kind)
        else:
            row: dict = {"phone_number": good[g][2:] if g % 3 == 0 else good[g]}  # some without "+"
            if g % 10 == 0:
                row["inbound_agents"] = [{"agent_id": agent["id"]}]
                row["name"] = f"Line {g}"
            rows.append(row)
            expected[index] = ("created", "")
            g += 1

    response = await client.post(
        "/v1/phone-numbers/import",
        headers=org.bearer,
        json={"numbers": rows, "defaults": {"language": "en-US"}},
    )
    assert response.status_code == 200, response.text[:500]
    report = response.json()
    assert (report["total"], report["created"], report["failed"]) == (100_000, 99_000, 1_000)
    assert [r["index"] for r in report["results"]] == list(range(100_000))
    for r in report["results"]:
        status, kind = expected[r["index"]]
        assert r["status"] == status, r
        if status == "failed":
            assert r["error"]["code"] == kind, r
            assert r["error"]["field"] and r["error"]["message"]
        else:
            assert r["id"] and r["phone_number"].startswith("+1")

    async with db.session() as session:
        stored = await session.scalar(
            select(func.count()).select_from(PhoneNumber).where(PhoneNumber.org_id == org.org_id)
        )
        created_events = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.org_id == org.org_id, OutboxEvent.type == "phone_number.created")
        )
        completed = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.org_id == org.org_id, OutboxEvent.type == "import.completed")
        )
    assert stored == 99_000 and created_events == 99_000 and completed == 1

    with_agent = await client.get(
        "/v1/phone-numbers", params={"agent_id": agent["id"], "limit": 1000}, headers=org.bearer
    )
    assert len(with_agent.json()["data"]) == 1000 and with_agent.json()["has_more"]
    sample = with_agent.json()["data"][0]
    assert sample["origin"] == "imported" and sample["carrier"] == "sip" and sample["language"] == "en-US"


async def test_import_rows_take_full_settings_and_report_conflicts(
    client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds
) -> None:
    rows = [
        {
            "phone_number": "+1 (646) 456-7001",
            "name": "Trunk A",
            "number_type": "local",
            "sip_outbound": {
                "endpoint": "acme.pstn.twilio.com",
                "username": "u",
                "password": "p",
                "transport": "tcp",
            },
            "capabilities": {"voice": True, "sms": True},
        },
        {"phone_number": "020 7946 0999", "country": "GB"},
        {"phone_number": "+16464567001"},
        "not an object",
    ]
    report = (
        await client.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=org.bearer)
    ).json()
    assert [r["status"] for r in report["results"]] == ["created", "created", "failed", "failed"]
    assert report["results"][1]["phone_number"] == "+442079460999"
    assert report["results"][2]["error"]["code"] == "duplicate"
    assert report["results"][3]["error"]["field"] == "row"
    first = (await client.get(f"/v1/phone-numbers/{report['results'][0]['id']}", headers=org.bearer)).json()
    assert first["sip_outbound"]["password_set"] is True and first["capabilities"]["sms"] is True
    # The same number again: in this org, and from another org.
    again = (
        await client.post(
            "/v1/phone-numbers/import",
            json={"numbers": [{"phone_number": "+16464567001"}]},
            headers=org.bearer,
        )
    ).json()["results"][0]
    assert again["error"]["code"] == "already_exists" and "this org" in again["error"]["message"]
    foreign = (
        await client.post(
            "/v1/phone-numbers/import",
            json={"numbers": [{"phone_number": "+16464567001"}]},
            headers=other_org.bearer,
        )
    ).json()["results"][0]
    assert foreign["error"]["code"] == "already_exists" and first["id"] not in foreign["error"]["message"]


async def test_empty_or_oversized_import_is_rejected_whole(client: httpx.AsyncClient, org: OrgCreds) -> None:
    empty = await client.post("/v1/phone-numbers/import", json={"numbers": []}, headers=org.bearer)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "numbers"
