"""/v1/carrier-accounts: credentials checked at the (fake) carrier, encrypted, never returned;
tenancy; defaults; deletion rules; platform-wide accounts."""

from __future__ import annotations

import base64
import json

import httpx
from sqlalchemy import select

from numberplane.carriers import service
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import credentials_of
from numberplane.carriers.schemas import PlatformAccountCreate, default_base_url
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import AuditEvent
from numberplane.numbers.models import PhoneNumber
from numberplane.tenancy.models import Org
from tests.fakes.signalwire import FakeSignalWire
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio
from tests.fakes.vonage import FakeVonage
from tests.support import AreaCodes, OrgCreds

URL = "/v1/carrier-accounts"
PUBLIC_KEY = base64.b64encode(bytes(range(32))).decode()


def twilio_body(fake: FakeTwilio, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "carrier": "twilio",
        "name": "Twilio prod",
        "credentials": {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
        "timeout_seconds": 2,
    }
    body.update(overrides)
    return body


async def test_create_twilio_account_checks_and_hides_the_token(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_twilio: FakeTwilio
) -> None:
    response = await client.post(URL, json=twilio_body(fake_twilio), headers=org.bearer)
    assert response.status_code == 201, response.text
    body = response.json()
    assert fake_twilio.auth_token not in response.text
    assert body["carrier"] == "twilio" and body["scope"] == "org" and body["routing_only"] is False
    assert body["config"] == {"account_sid": fake_twilio.account_sid, "timeout_seconds": 2.0}
    assert body["secrets_set"] == ["auth_token"] and body["warnings"] == []
    assert len(fake_twilio.requests_for("account")) == 1  # one cheap authenticated call
    async with db.session() as session:
        account = await session.get(CarrierAccount, body["id"])
        assert account is not None and account.org_id == org.org_id
        assert fake_twilio.auth_token not in account.credentials_enc
        assert credentials_of(account) == {"auth_token": fake_twilio.auth_token}
        rows = list(await session.scalars(select(AuditEvent).where(AuditEvent.target_id == body["id"])))
    assert [r.action for r in rows] == ["carrier_account.created"]
    assert fake_twilio.auth_token not in json.dumps([r.after for r in rows])
    got = await client.get(f"{URL}/{body['id']}", headers=org.bearer)
    assert got.status_code == 200 and fake_twilio.auth_token not in got.text


async def test_twilio_api_key_account_warns_about_signatures(
    client: httpx.AsyncClient, org: OrgCreds, fake_twilio: FakeTwilio
) -> None:
    creds = {
        "account_sid": fake_twilio.account_sid,
        "api_key_sid": fake_twilio.api_key_sid,
        "api_key_secret": fake_twilio.api_key_secret,
    }
    response = await client.post(URL, json=twilio_body(fake_twilio, credentials=creds), headers=org.bearer)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secrets_set"] == ["api_key_secret"]
    assert body["config"]["api_key_sid"] == fake_twilio.api_key_sid
    assert any("auth_token" in w for w in body["warnings"])


async def test_rejected_credentials_name_the_carrier(
    client: httpx.AsyncClient, org: OrgCreds, fake_twilio: FakeTwilio
) -> None:
    bad = {"account_sid": fake_twilio.account_sid, "auth_token": "0" * 32}
    response = await client.post(URL, json=twilio_body(fake_twilio, credentials=bad), headers=org.bearer)
    assert response.status_code == 424, response.text
    problem = response.json()
    assert problem["code"] == "carrier_auth_failed" and problem["carrier"] == "twilio"
    assert "Twilio" in problem["detail"] and "0" * 32 not in response.text
    listed = await client.get(URL, headers=org.bearer)
    assert [a["carrier"] for a in listed.json()["data"]] == ["sandbox"]


async def test_unreachable_carrier_is_424_retriable(
    client: httpx.AsyncClient, org: OrgCreds, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.faults.fail("account", 503, retry_after=5)
    response = await client.post(URL, json=twilio_body(fake_twilio), headers=org.bearer)
    assert response.status_code == 424
    assert response.json()["code"] == "carrier_unavailable" and response.headers["retry-after"] == "5"
    fake_twilio.stop()
    response = await client.post(URL, json=twilio_body(fake_twilio), headers=org.bearer)
    assert response.status_code == 424 and "could not reach Twilio" in response.json()["detail"]


async def test_shape_errors_are_422_and_say_what_is_missing(
    client: httpx.AsyncClient, org: OrgCreds, fake_twilio: FakeTwilio
) -> None:
    cases = [
        ({"account_sid": fake_twilio.account_sid}, "auth_token"),
        ({"account_sid": "AC123", "auth_token": "x"}, "account SID"),
        ({"account_sid": fake_twilio.account_sid, "auth_token": "x", "password": "y"}, "not a twilio field"),
        ({"account_sid": fake_twilio.account_sid, "api_key_sid": "SK" + "1" * 32}, "api_key_secret"),
    ]
    for creds, words in cases:
        response = await client.post(
            URL, json=twilio_body(fake_twilio, credentials=creds), headers=org.bearer
        )
        assert response.status_code == 422, response.text
        assert words in response.json()["detail"], response.json()["detail"]
    telnyx = {"carrier": "telnyx", "name": "t", "credentials": {"api_key": "KEY1"}}
    response = await client.post(URL, json=telnyx, headers=org.bearer)
    assert response.status_code == 422 and "texml_application_id" in response.json()["detail"]
    response = await client.post(URL, json={**telnyx, "carrier": "sandbox"}, headers=org.bearer)
    assert response.status_code == 422
    assert fake_twilio.requests == []  # nothing malformed reaches the carrier


async def test_telnyx_and_signalwire_accounts(
    client: httpx.AsyncClient,
    org: OrgCreds,
    fake_telnyx: FakeTelnyx,
    fake_signalwire: FakeSignalWire,
    db: Database,
) -> None:
    telnyx = {
        "carrier": "telnyx",
        "name": "Telnyx",
        "credentials": {
            "api_key": fake_telnyx.api_key,
            "texml_application_id": fake_telnyx.texml_application_id,
            "public_key": PUBLIC_KEY,
        },
    }
    response = await client.post(URL, json=telnyx, headers=org.bearer)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["config"]["public_key"] == PUBLIC_KEY and body["secrets_set"] == ["api_key"]
    assert fake_telnyx.api_key not in response.text
    bad = {**telnyx, "credentials": {**telnyx["credentials"], "api_key": "KEYnope"}}  # type: ignore[dict-item]
    response = await client.post(URL, json=bad, headers=org.bearer)
    assert response.status_code == 424 and "Telnyx" in response.json()["detail"]

    signalwire = {
        "carrier": "signalwire",
        "name": "SignalWire",
        "credentials": {
            "space": fake_signalwire.space,
            "project_id": fake_signalwire.project_id,
            "api_token": fake_signalwire.api_token,
            "signing_key": fake_signalwire.signing_key,
        },
    }
    response = await client.post(URL, json=signalwire, headers=org.bearer)
    assert response.status_code == 201, response.text
    sw = response.json()
    assert sw["secrets_set"] == ["api_token", "signing_key"]
    assert fake_signalwire.api_token not in response.text and fake_signalwire.signing_key not in response.text
    async with db.session() as session:
        account = await session.get(CarrierAccount, sw["id"])
        assert account is not None
        assert credentials_of(account)["signing_key"] == fake_signalwire.signing_key
    # Without the operator's setting an account's requests go to its own space's host.
    assert default_base_url("signalwire", {"space": "acme"}) == "https://acme.signalwire.com"
    assert default_base_url("signalwire", {"space": "acme.signalwire.com"}) == "https://acme.signalwire.com"
    bad_sw = {**signalwire, "credentials": {**signalwire["credentials"], "api_token": "PTnope"}}  # type: ignore[dict-item]
    response = await client.post(URL, json=bad_sw, headers=org.bearer)
    assert response.status_code == 424 and "SignalWire" in response.json()["detail"]


async def test_vonage_is_routing_only_and_checked_at_vonage(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_vonage: FakeVonage
) -> None:
    body = {
        "carrier": "vonage",
        "name": "Vonage",
        "credentials": {
            "api_key": fake_vonage.api_key,
            "api_secret": fake_vonage.api_secret,
            "signature_secret": "sigsecret",
        },
    }
    response = await client.post(URL, json=body, headers=org.bearer)
    assert response.status_code == 201, response.text
    account = response.json()
    assert account["routing_only"] is True and account["config"] == {"api_key": fake_vonage.api_key}
    assert "sigsecret" not in response.text and fake_vonage.api_secret not in response.text
    # The API key is proved at Vonage (Basic auth, as Vonage documents) before anything is stored.
    (check,) = fake_vonage.requests_for("balance")
    assert check["path"] == "/account/get-balance" and "error" not in check
    async with db.session() as session:
        stored = await session.get(CarrierAccount, account["id"])
        assert stored is not None and credentials_of(stored)["signature_secret"] == "sigsecret"
    response = await client.post(f"{URL}/{account['id']}/default", headers=org.bearer)
    assert response.status_code == 409 and response.json()["code"] == "routing_only_account"
    response = await client.post(URL, json={**body, "make_default": True}, headers=org.bearer)
    assert response.status_code == 409


async def test_vonage_registration_needs_the_keys_owner(
    client: httpx.AsyncClient, org: OrgCreds, fake_vonage: FakeVonage
) -> None:
    """Before the fix no call was made: anyone could register another org's Vonage API key."""
    body = {
        "carrier": "vonage",
        "name": "Not mine",
        "credentials": {"api_key": fake_vonage.api_key, "api_secret": "guessed", "signature_secret": "s"},
    }
    response = await client.post(URL, json=body, headers=org.bearer)
    assert response.status_code == 424, response.text
    problem = response.json()
    assert problem["code"] == "carrier_auth_failed" and problem["carrier"] == "vonage"
    assert "Vonage" in problem["detail"] and "guessed" not in response.text
    assert [r.get("error") for r in fake_vonage.requests_for("balance")] == ["401"]
    listed = await client.get(URL, headers=org.bearer)
    assert "vonage" not in [a["carrier"] for a in listed.json()["data"]]
    fake_vonage.faults.fail("balance", 503, retry_after=3)
    good = {**body["credentials"], "api_secret": fake_vonage.api_secret}  # type: ignore[dict-item]
    response = await client.post(URL, json={**body, "credentials": good}, headers=org.bearer)
    assert response.status_code == 424 and response.json()["code"] == "carrier_unavailable"


async def test_another_orgs_account_is_missing(
    client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, fake_twilio: FakeTwilio
) -> None:
    created = (await client.post(URL, json=twilio_body(fake_twilio), headers=org.bearer)).json()
    for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/default"), ("POST", "/reconcile")]:
        theirs = await client.request(method, f"{URL}/{created['id']}{suffix}", headers=other_org.bearer)
        missing = await client.request(method, f"{URL}/{new_id()}{suffix}", headers=other_org.bearer)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["code"] == missing.json()["code"]
    listed = await client.get(URL, headers=other_org.bearer)
    assert created["id"] not in [a["id"] for a in listed.json()["data"]]
    assert (await client.get(URL)).status_code == 401


async def test_default_and_delete(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, fake_twilio: FakeTwilio, area_codes: AreaCodes
) -> None:
    created = (
        await client.post(URL, json=twilio_body(fake_twilio, make_default=True), headers=org.bearer)
    ).json()
    assert created["is_default"] is True
    async with db.session() as session:
        org_row = await session.get(Org, org.org_id)
        assert org_row is not None and org_row.default_carrier_account_id == created["id"]
    listed = (await client.get(URL, headers=org.bearer)).json()["data"]
    assert {a["carrier"]: a["is_default"] for a in listed} == {"sandbox": False, "twilio": True}
    sandbox = next(a for a in listed if a["carrier"] == "sandbox")
    assert (await client.delete(f"{URL}/{sandbox['id']}", headers=org.bearer)).status_code == 409

    # In use: refused.
    async with db.session() as session:
        session.add(
            PhoneNumber(
                id=new_id(),
                org_id=org.org_id,
                phone_number=f"+1{area_codes.take()}5550177",
                status="active",
                carrier="twilio",
                carrier_account_id=created["id"],
            )
        )
        await session.commit()
    response = await client.delete(f"{URL}/{created['id']}", headers=org.bearer)
    assert response.status_code == 409 and response.json()["code"] == "carrier_account_in_use"
    async with db.session() as session:
        pn = await session.scalar(select(PhoneNumber).where(PhoneNumber.carrier_account_id == created["id"]))
        assert pn is not None
        pn.status = "released"
        await session.commit()

    assert (await client.delete(f"{URL}/{created['id']}", headers=org.bearer)).status_code == 204
    assert (await client.get(f"{URL}/{created['id']}", headers=org.bearer)).status_code == 404
    async with db.session() as session:
        org_row = await session.get(Org, org.org_id)
        assert org_row is not None and org_row.default_carrier_account_id == sandbox["id"]
    back = await client.post(f"{URL}/{sandbox['id']}/default", headers=org.bearer)
    assert back.status_code == 200 and back.json()["is_default"] is True


async def test_platform_accounts_are_usable_by_orgs_but_not_theirs_to_delete(
    client: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, db: Database, fake_twilio: FakeTwilio
) -> None:
    data = PlatformAccountCreate.model_validate(twilio_body(fake_twilio, name="Platform Twilio"))
    platform = await service.create_account(db=db, actor=Actor.cli(), org_id=None, data=data)
    assert platform.scope == "platform"
    for who in (org, other_org):
        listed = (await client.get(URL, headers=who.bearer)).json()["data"]
        assert platform.id in [a["id"] for a in listed]
        got = await client.get(f"{URL}/{platform.id}", headers=who.bearer)
        assert got.status_code == 200 and got.json()["scope"] == "platform"
    made = await client.post(f"{URL}/{platform.id}/default", headers=org.bearer)
    assert made.status_code == 200 and made.json()["is_default"] is True
    other_view = await client.get(f"{URL}/{platform.id}", headers=other_org.bearer)
    assert other_view.json()["is_default"] is False
    refused = await client.delete(f"{URL}/{platform.id}", headers=org.bearer)
    assert refused.status_code == 403 and refused.json()["code"] == "platform_account"
    refused = await client.post(f"{URL}/{platform.id}/reconcile", headers=org.bearer)
    assert refused.status_code == 403
    async with db.session() as session:
        stored = await session.get(CarrierAccount, platform.id)
        assert stored is not None and stored.org_id is None
        # Leave no platform account behind for other tests' listings.
        await session.delete(stored)
        org_row = await session.get(Org, org.org_id)
        assert org_row is not None
        org_row.default_carrier_account_id = None
        await session.commit()
