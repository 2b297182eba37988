"""Reconcile against fake carriers: webhook drift repaired, numbers released at the carrier marked
released, unknown numbers reported (never adopted or released), in-flight purchases and releases
settled, and nothing judged from a partial listing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from numberplane.kernel.db import Database
from numberplane.kernel.outbox import OutboxEvent
from numberplane.kernel.settings import get_settings
from numberplane.numbers.models import PhoneNumber
from tests.fakes.signalwire import FakeSignalWire
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio
from tests.support import AreaCodes, OrgCreds

ACCOUNTS = "/v1/carrier-accounts"
NUMBERS = "/v1/phone-numbers"


def voice_url(carrier: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/voice/{carrier}"


async def connect_twilio(client: httpx.AsyncClient, org: OrgCreds, fake: FakeTwilio, **config: Any) -> str:
    body = {
        "carrier": "twilio",
        "name": "Twilio",
        "credentials": {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
        "timeout_seconds": config.pop("timeout_seconds", 1.0),
    }
    response = await client.post(ACCOUNTS, json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def buy(client: httpx.AsyncClient, org: OrgCreds, account_id: str, number: str) -> dict[str, Any]:
    response = await client.post(
        NUMBERS, json={"phone_number": number, "carrier_account_id": account_id}, headers=org.bearer
    )
    assert response.status_code in (201, 202), response.text
    return dict(response.json())


async def reconcile(client: httpx.AsyncClient, org: OrgCreds, account_id: str) -> dict[str, Any]:
    response = await client.post(f"{ACCOUNTS}/{account_id}/reconcile", headers=org.bearer)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def drift_events(db: Database, org_id: str) -> list[dict[str, Any]]:
    async with db.session() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.org_id == org_id, OutboxEvent.type == "carrier.drift_detected")
            .order_by(OutboxEvent.id)
        )
        return [r.data for r in rows]


async def test_twilio_drift_is_found_repaired_and_reported(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    account_id = await connect_twilio(client, org, fake_twilio)
    changed = await buy(client, org, account_id, f"+1{area}5550100")
    gone = await buy(client, org, account_id, f"+1{area}5550101")
    steady = await buy(client, org, account_id, f"+1{area}5550102")
    assert changed["status"] == "active"
    assert fake_twilio.by_number(f"+1{area}5550100")["voice_url"] == voice_url("twilio")  # type: ignore[index]

    fake_twilio.set_fields(f"+1{area}5550100", voice_url="https://someone-else.example/voice")
    fake_twilio.remove(f"+1{area}5550101")
    stranger = fake_twilio.add_owned(f"+1{area}5550109", voice_url="https://elsewhere.example/")

    report = await reconcile(client, org, account_id)
    assert report["complete"] is True and report["errors"] == []
    assert report["carrier_numbers"] == 3 and report["checked"] == 3 and report["in_sync"] == 1
    by_kind = {d["kind"]: d for d in report["drift"]}
    assert set(by_kind) == {"webhook_changed", "missing_at_carrier", "unknown_at_carrier"}
    assert by_kind["webhook_changed"]["phone_number"] == f"+1{area}5550100"
    assert by_kind["webhook_changed"]["repaired"] is True
    assert by_kind["webhook_changed"]["detail"]["drift"]["voice_url"] == {
        "carrier": "https://someone-else.example/voice",
        "expected": voice_url("twilio"),
    }
    assert by_kind["missing_at_carrier"]["phone_number"] == f"+1{area}5550101"
    assert by_kind["unknown_at_carrier"]["phone_number"] == f"+1{area}5550109"

    # Repaired at the carrier; the gone number is released with the reason; the stranger untouched.
    assert fake_twilio.by_number(f"+1{area}5550100")["voice_url"] == voice_url("twilio")  # type: ignore[index]
    got = (await client.get(f"{NUMBERS}/{changed['id']}", headers=org.bearer)).json()
    assert got["carrier_sync"]["status"] == "repaired"
    released = (await client.get(f"{NUMBERS}/{gone['id']}", headers=org.bearer)).json()
    assert released["status"] == "released"
    assert released["carrier_sync"]["status"] == "missing_at_carrier"
    assert fake_twilio.by_number(f"+1{area}5550109") == stranger
    async with db.session() as session:
        adopted = await session.scalar(
            select(PhoneNumber).where(PhoneNumber.phone_number == f"+1{area}5550109")
        )
    assert adopted is None
    assert (await client.get(f"{NUMBERS}/{steady['id']}", headers=org.bearer)).json()["status"] == "active"

    events = await drift_events(db, org.org_id)
    assert sorted(e["kind"] for e in events) == [
        "missing_at_carrier",
        "unknown_at_carrier",
        "webhook_changed",
    ]
    assert all(e["account_id"] == account_id for e in events)

    # A second run finds only the stranger, still reported and still not adopted.
    again = await reconcile(client, org, account_id)
    assert [d["kind"] for d in again["drift"]] == ["unknown_at_carrier"]
    assert again["in_sync"] == 2 and again["checked"] == 2
    assert fake_twilio.bought_twice() == []


async def test_lost_purchase_and_stuck_release_are_settled(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    account_id = await connect_twilio(client, org, fake_twilio, timeout_seconds=0.5)
    # A release the carrier times out on stays visibly `releasing`.
    doomed = await buy(client, org, account_id, f"+1{area}5550110")
    fake_twilio.faults.fail("release", 503, retry_after=1)
    response = await client.delete(f"{NUMBERS}/{doomed['id']}", headers=org.bearer)
    assert response.status_code in (200, 202), response.text
    assert response.json()["status"] == "releasing"
    assert f"+1{area}5550110" in fake_twilio.owned_numbers()
    # A purchase whose response is lost, and whose find also fails, stays pending.
    fake_twilio.faults.lose_response("buy")
    fake_twilio.faults.fail("list", 500)
    response = await client.post(
        NUMBERS,
        json={"phone_number": f"+1{area}5550111", "carrier_account_id": account_id},
        headers=org.bearer,
    )
    pending = response.json()
    assert response.status_code in (201, 202, 503), response.text
    report = await reconcile(client, org, account_id)
    assert report["releases"] == {"released": 1}
    assert report["orders"] == {"completed": 1}
    assert f"+1{area}5550110" not in fake_twilio.owned_numbers()
    assert fake_twilio.purchases == [f"+1{area}5550110", f"+1{area}5550111"]
    listed = (await client.get(NUMBERS, params={"q": f"+1{area}5550111"}, headers=org.bearer)).json()["data"]
    assert [(n["phone_number"], n["status"]) for n in listed] == [(f"+1{area}5550111", "active")]
    if "id" in pending:
        assert listed[0]["id"] == pending["id"]
    assert report["drift"] == [] and report["in_sync"] == 1


async def test_a_failed_listing_never_releases_anything(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    account_id = await connect_twilio(client, org, fake_twilio)
    bought = await buy(client, org, account_id, f"+1{area}5550112")
    fake_twilio.remove(f"+1{area}5550112")
    fake_twilio.faults.fail("list", 500)
    report = await reconcile(client, org, account_id)
    assert report["complete"] is False and report["errors"]
    assert report["drift"] == []
    assert (await client.get(f"{NUMBERS}/{bought['id']}", headers=org.bearer)).json()["status"] == "active"
    # Nor does a listing cut short by the per-run bound.
    fake_twilio.add_owned(f"+1{area}5550121")
    response = await client.post(f"{ACCOUNTS}/{account_id}/reconcile?max_numbers=1", headers=org.bearer)
    assert response.json()["complete"] is False
    assert (await client.get(f"{NUMBERS}/{bought['id']}", headers=org.bearer)).json()["status"] == "active"
    final = await reconcile(client, org, account_id)
    assert {d["kind"] for d in final["drift"]} == {"missing_at_carrier", "unknown_at_carrier"}


async def test_telnyx_connection_drift(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_telnyx: FakeTelnyx, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    body = {
        "carrier": "telnyx",
        "name": "Telnyx",
        "credentials": {
            "api_key": fake_telnyx.api_key,
            "texml_application_id": fake_telnyx.texml_application_id,
        },
        "timeout_seconds": 1,
    }
    response = await client.post(ACCOUNTS, json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    account_id = response.json()["id"]
    bought = await buy(client, org, account_id, f"+1{area}5550100")
    if bought["status"] == "pending":
        fake_telnyx.complete_orders()
        report = await reconcile(client, org, account_id)
        assert report["orders"] == {"completed": 1}
    app = fake_telnyx.applications[fake_telnyx.texml_application_id]
    assert app["voice_url"] == voice_url("telnyx")
    fake_telnyx.set_fields(f"+1{area}5550100", connection_id=fake_telnyx.connection_id)
    report = await reconcile(client, org, account_id)
    (drift,) = report["drift"]
    assert drift["kind"] == "webhook_changed" and drift["repaired"] is True
    assert "connection_id" in drift["detail"]["drift"]
    held = fake_telnyx.by_number(f"+1{area}5550100")
    assert held is not None and held["connection_id"] == fake_telnyx.texml_application_id
    assert (await reconcile(client, org, account_id))["drift"] == []


async def test_signalwire_handler_drift(
    client: httpx.AsyncClient, org: OrgCreds, fake_signalwire: FakeSignalWire, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    body = {
        "carrier": "signalwire",
        "name": "SignalWire",
        "credentials": {
            "space": fake_signalwire.space,
            "project_id": fake_signalwire.project_id,
            "api_token": fake_signalwire.api_token,
        },
        "timeout_seconds": 1,
    }
    response = await client.post(ACCOUNTS, json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    account_id = response.json()["id"]
    await buy(client, org, account_id, f"+1{area}5550100")
    fake_signalwire.set_fields(
        f"+1{area}5550100", call_handler="relay_script", call_relay_script_url="https://x.example"
    )
    report = await reconcile(client, org, account_id)
    (drift,) = report["drift"]
    assert drift["kind"] == "webhook_changed" and drift["repaired"] is True
    held = fake_signalwire.by_number(f"+1{area}5550100")
    assert held is not None and held["call_handler"] == "laml_webhooks"
    assert held["call_request_url"] == voice_url("signalwire")


async def test_cli_reconcile_prints_json_reports(
    client: httpx.AsyncClient, org: OrgCreds, db_url: str, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    account_id = await connect_twilio(client, org, fake_twilio)
    await buy(client, org, account_id, f"+1{area}5550114")
    fake_twilio.set_fields(f"+1{area}5550114", voice_url="https://drifted.example/")
    # The operator points Twilio at the fake in the CLI's environment too.
    env = {
        **os.environ,
        "NUMBERPLANE_DATABASE_URL": db_url,
        "NUMBERPLANE_TWILIO_API_BASE_URL": fake_twilio.url,
    }
    command = [str(Path(sys.executable).parent / "numberplane"), "carriers", "reconcile", "--json"]
    result = await asyncio.to_thread(
        subprocess.run,
        [*command, "--account", account_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    report = json.loads(line)
    assert report["object"] == "reconcile_report" and report["account_id"] == account_id
    assert [(d["kind"], d["repaired"]) for d in report["drift"]] == [("webhook_changed", True)]
    assert fake_twilio.by_number(f"+1{area}5550114")["voice_url"] == voice_url("twilio")  # type: ignore[index]
    human = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "numberplane"), "carriers", "reconcile", "--account", account_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert human.returncode == 0, human.stderr
    assert "1 checked, 1 in sync, 0 drift" in human.stdout


async def test_reconcile_all_skips_idle_sandbox_accounts(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    from numberplane.carriers.models import CarrierAccount
    from numberplane.numbers.reconcile import reconcile_all

    area = area_codes.take()
    account_id = await connect_twilio(client, org, fake_twilio)
    await buy(client, org, account_id, f"+1{area}5550100")
    async with db.session() as session:
        sandbox = await session.scalar(
            select(CarrierAccount.id).where(
                CarrierAccount.org_id == org.org_id, CarrierAccount.carrier == "sandbox"
            )
        )
    reports = {r.account_id: r for r in await reconcile_all(db=db)}
    assert account_id in reports and sandbox not in reports
    assert reports[account_id].in_sync == 1 and reports[account_id].errors == []
