"""Vapi's phone-number API at /vapi, through the official ``vapi_server_sdk`` on loopback. Every
resource is also validated against the SDK's own pydantic types for its provider."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from vapi import Vapi
from vapi.core.api_error import ApiError
from vapi.phone_numbers import (
    CreatePhoneNumbersRequest_ByoPhoneNumber,
    CreatePhoneNumbersRequest_Telnyx,
    CreatePhoneNumbersRequest_Twilio,
    CreatePhoneNumbersRequest_Vapi,
    CreatePhoneNumbersRequest_Vonage,
    UpdatePhoneNumbersRequestBody_ByoPhoneNumber,
    UpdatePhoneNumbersRequestBody_Twilio,
    UpdatePhoneNumbersRequestBody_Vapi,
)
from vapi.types import (
    ByoPhoneNumber,
    CreateVapiPhoneNumberDtoFallbackDestination_Number,
    CreateVapiPhoneNumberDtoHooksItem_CallRinging,
    PhoneNumberHookCallRingingDoItem_Say,
    Server,
    TelnyxPhoneNumber,
    TwilioPhoneNumber,
    VapiPhoneNumber,
    VonagePhoneNumber,
)

from tests.dialects.helpers import connect_telnyx, make_agent, v1_count, v1_get
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio
from tests.fakes.vonage import FakeVonage
from tests.support import AreaCodes, LiveServer, OrgCreds

TYPES: dict[str, type[BaseModel]] = {
    "vapi": VapiPhoneNumber,
    "twilio": TwilioPhoneNumber,
    "telnyx": TelnyxPhoneNumber,
    "vonage": VonagePhoneNumber,
    "byo-phone-number": ByoPhoneNumber,
}
HOOK = "https://cust.example.com"


def sdk(live_server: LiveServer, org: OrgCreds, token: str | None = None) -> Vapi:
    return Vapi(token=token or org.token, base_url=live_server.url + "/vapi")


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def typed(body: dict[str, Any]) -> BaseModel:
    """The raw resource, validated (not merely constructed) as the SDK's type for its provider."""
    return TYPES[body["provider"]].model_validate(body)


async def raw(http: httpx.AsyncClient, org: OrgCreds, number_id: str) -> dict[str, Any]:
    response = await http.get(f"/vapi/phone-number/{number_id}", headers=org.bearer)
    assert response.status_code == 200, response.text
    return response.json()


async def test_buy_update_list_and_delete_a_vapi_number(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    client = sdk(live_server, org)
    agent = await make_agent(http, org, "Vapi assistant")
    area = area_codes.take()
    created = await call(
        client.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Vapi(
            number_desired_area_code=area,
            name="Main",
            assistant_id=agent["id"],
            squad_id="squad-1",
            server=Server(url=f"{HOOK}/assistant-request", timeout_seconds=5),
            fallback_destination=CreateVapiPhoneNumberDtoFallbackDestination_Number(
                number="+14155550199", message="Transferring you now", caller_id="+14155550100"
            ),
            hooks=[
                CreateVapiPhoneNumberDtoHooksItem_CallRinging(
                    do=[PhoneNumberHookCallRingingDoItem_Say(exact="Hello")]
                )
            ],
        ),
    )
    assert created.provider == "vapi" and created.number.startswith(f"+1{area}")
    assert created.assistant_id == agent["id"] and created.squad_id == "squad-1"
    assert created.status == "active" and created.org_id == org.org_id
    assert created.server.url == f"{HOOK}/assistant-request" and created.server.timeout_seconds == 5
    assert created.fallback_destination.number == "+14155550199"
    assert created.fallback_destination.message == "Transferring you now"
    body = await raw(http, org, created.id)
    assert typed(body).number_desired_area_code == area  # type: ignore[attr-defined]
    assert body["hooks"] == [{"on": "call.ringing", "do": [{"type": "say", "exact": "Hello"}]}]

    core = await v1_get(http, org, created.id)
    assert core["inbound_agents"][0]["agent_id"] == agent["id"] and core["name"] == "Main"
    assert core["inbound_webhook_url"] == f"{HOOK}/assistant-request"
    assert core["inbound_webhook_timeout_ms"] == 5000
    assert core["fallback"] == {"number": "+14155550199"}
    assert core["extras"]["vapi"]["squadId"] == "squad-1"

    updated = await call(
        client.phone_numbers.update,
        created.id,
        request=UpdatePhoneNumbersRequestBody_Vapi(name="Renamed", assistant_id=None, workflow_id="wf-9"),
    )
    assert updated.name == "Renamed" and updated.workflow_id == "wf-9"
    assert updated.server.url == f"{HOOK}/assistant-request"
    assert updated.fallback_destination.message == "Transferring you now"
    # The SDK sends assistant_id=None as null: the assistant is cleared. Fields not sent stay.
    assert updated.assistant_id is None
    assert (await v1_get(http, org, created.id))["inbound_agents"] == []
    cleared = await http.patch(f"/vapi/phone-number/{created.id}", json={"server": None}, headers=org.bearer)
    assert cleared.status_code == 200 and cleared.json()["server"] is None
    assert cleared.json()["name"] == "Renamed" and cleared.json()["workflowId"] == "wf-9"
    # A /v1 fallback change shows here (and drops the Vapi-only message that went with the old one).
    await http.patch(
        f"/v1/phone-numbers/{created.id}",
        json={"fallback": {"sip_uri": "sip:desk@pbx.example.com"}},
        headers=org.bearer,
    )
    got = await call(client.phone_numbers.get, created.id)
    assert got.fallback_destination.type == "sip"
    assert got.fallback_destination.sip_uri == "sip:desk@pbx.example.com"

    listed = await call(client.phone_numbers.list)
    assert [n.id for n in listed] == [created.id]
    assert await call(client.phone_numbers.list, created_at_gt=got.created_at) == []
    assert [n.id for n in await call(client.phone_numbers.list, updated_at_ge=got.updated_at)] == [created.id]
    paged = await call(client.phone_numbers.phone_number_controller_find_all_paginated, search="renamed")
    assert [n.id for n in paged.results] == [created.id] and paged.metadata.total_items == 1

    deleted = await call(client.phone_numbers.delete, created.id)
    assert deleted.id == created.id and deleted.status == "blocked"
    with pytest.raises(ApiError) as gone:
        await call(client.phone_numbers.get, created.id)
    assert gone.value.status_code == 404 and gone.value.body["statusCode"] == 404
    assert (await v1_get(http, org, created.id))["status"] == "released"
    assert await call(client.phone_numbers.list) == []


async def test_import_from_twilio_with_the_clients_credentials(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    org: OrgCreds,
    fake_twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
    area_codes: AreaCodes,
) -> None:
    area = area_codes.take()
    # Where Numberplane reaches Twilio is the operator's setting, never the tenant's: the default
    # base URL is pointed at the fake on loopback for this test.
    fake_twilio.add_owned(f"+1{area}5550142")
    fake_twilio.add_owned(f"+1{area}5550143")
    client = sdk(live_server, org)
    created = await call(
        client.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Twilio(
            number=f"+1{area}5550142",
            twilio_account_sid=fake_twilio.account_sid,
            twilio_auth_token=fake_twilio.auth_token,
            sms_enabled=False,
            name="Imported",
        ),
    )
    body = await raw(http, org, created.id)
    assert typed(body) and body["provider"] == "twilio" and body["smsEnabled"] is False
    assert body["twilioAccountSid"] == fake_twilio.account_sid
    assert "twilioAuthToken" not in body and fake_twilio.auth_token not in str(body)
    core = await v1_get(http, org, created.id)
    assert core["carrier"] == "twilio" and core["origin"] == "imported" and core["name"] == "Imported"
    # The number at Twilio now points at Numberplane.
    assert "/twilio" in (fake_twilio.by_number(f"+1{area}5550142") or {}).get("voice_url", "")

    accounts = (await http.get("/v1/carrier-accounts", headers=org.bearer)).json()["data"]
    twilio = [a for a in accounts if a["carrier"] == "twilio"]
    assert len(twilio) == 1 and twilio[0]["secrets_set"] == ["auth_token"]
    assert fake_twilio.auth_token not in str(accounts)

    # A second import from the same Twilio account reuses that account.
    second = await call(
        client.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Twilio(
            number=f"+1{area}5550143",
            twilio_account_sid=fake_twilio.account_sid,
            twilio_auth_token=fake_twilio.auth_token,
        ),
    )
    assert second.twilio_account_sid == fake_twilio.account_sid
    accounts = (await http.get("/v1/carrier-accounts", headers=org.bearer)).json()["data"]
    assert len([a for a in accounts if a["carrier"] == "twilio"]) == 1

    # Wrong credentials, a number the account does not hold, a missing secret: refused, nothing written.
    before = await v1_count(http, org)
    for request, field in (
        (
            CreatePhoneNumbersRequest_Twilio(
                number=f"+1{area}5550144", twilio_account_sid="AC" + "1" * 32, twilio_auth_token="nope"
            ),
            "twilio",
        ),
        (
            CreatePhoneNumbersRequest_Twilio(
                number=f"+1{area}5550145",
                twilio_account_sid=fake_twilio.account_sid,
                twilio_auth_token=fake_twilio.auth_token,
            ),
            "number",
        ),
        (
            CreatePhoneNumbersRequest_Twilio(
                number=f"+1{area}5550146", twilio_account_sid=fake_twilio.account_sid
            ),
            "twilioAuthToken",
        ),
        (
            CreatePhoneNumbersRequest_Twilio(
                number=f"+1{area}5550146", twilio_account_sid="not-a-sid", twilio_auth_token="x"
            ),
            "twilioAccountSid",
        ),
    ):
        with pytest.raises(ApiError) as refused:
            await call(client.phone_numbers.create, request=request)
        assert 400 <= refused.value.status_code < 500, refused.value.body
        assert field.lower() in str(refused.value.body).lower()
    assert await v1_count(http, org) == before
    # A Twilio account connected for an import that then failed is not left behind.
    other = fake_twilio.add_account()  # another Twilio account, which does not hold the number
    with pytest.raises(ApiError) as not_held:
        await call(
            client.phone_numbers.create,
            request=CreatePhoneNumbersRequest_Twilio(
                number=f"+1{area}5550147",
                twilio_account_sid=other.account_sid,
                twilio_auth_token=other.auth_token,
            ),
        )
    assert not_held.value.status_code == 400
    accounts = (await http.get("/v1/carrier-accounts", headers=org.bearer)).json()["data"]
    assert [a["config"]["account_sid"] for a in accounts if a["carrier"] == "twilio"] == [
        fake_twilio.account_sid
    ]

    # New secrets for the same account are checked at Twilio before they replace the old ones.
    with pytest.raises(ApiError) as rotated:
        await call(
            client.phone_numbers.update,
            created.id,
            request=UpdatePhoneNumbersRequestBody_Twilio(twilio_auth_token="not-the-token"),
        )
    assert rotated.value.status_code == 424


async def test_import_onto_telnyx_vonage_and_a_sip_trunk(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    org: OrgCreds,
    fake_telnyx: FakeTelnyx,
    fake_vonage: FakeVonage,
    area_codes: AreaCodes,
) -> None:
    area = area_codes.take()
    client = sdk(live_server, org)
    telnyx = await connect_telnyx(http, org, fake_telnyx)
    fake_telnyx.add_owned(f"+1{area}5550177")
    created = await call(
        client.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Telnyx(number=f"+1{area}5550177", credential_id=telnyx["id"]),
    )
    body = await raw(http, org, created.id)
    assert typed(body) and body["credentialId"] == telnyx["id"]
    assert (await v1_get(http, org, created.id))["carrier"] == "telnyx"

    vonage = await http.post(
        "/v1/carrier-accounts",
        json={
            "carrier": "vonage",
            "name": "Vonage",
            "credentials": {
                "api_key": fake_vonage.api_key,
                "api_secret": fake_vonage.api_secret,
                "signature_secret": "sig",
            },
        },
        headers=org.bearer,
    )
    assert vonage.status_code == 201, vonage.text
    by_vonage = await call(
        client.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Vonage(number="+442079460123", credential_id=vonage.json()["id"]),
    )
    assert typed(await raw(http, org, by_vonage.id)).provider == "vonage"  # type: ignore[attr-defined]
    # Without a credentialId, the provider picks the org's account of that carrier.
    implied = await http.post(
        "/vapi/phone-number", json={"provider": "vonage", "number": "+442079460124"}, headers=org.bearer
    )
    assert implied.status_code == 201 and implied.json()["credentialId"] == vonage.json()["id"]

    byo = await call(
        client.phone_numbers.create,
        request=CreatePhoneNumbersRequest_ByoPhoneNumber(
            number=f"+1{area}5550188", credential_id="trunk-livekit-1", number_e_164_check_enabled=False
        ),
    )
    body = await raw(http, org, byo.id)
    assert typed(body) and body["credentialId"] == "trunk-livekit-1"
    assert body["numberE164CheckEnabled"] is False
    core = await v1_get(http, org, byo.id)
    assert core["sip_outbound"]["trunk_id"] == "trunk-livekit-1" and core["carrier"] == "sip"
    changed = await call(
        client.phone_numbers.update,
        byo.id,
        request=UpdatePhoneNumbersRequestBody_ByoPhoneNumber(name="Trunk line"),
    )
    assert changed.name == "Trunk line" and changed.credential_id == "trunk-livekit-1"

    for payload, field in (
        (
            {"provider": "telnyx", "number": f"+1{area}5550178", "credentialId": vonage.json()["id"]},
            "credentialId",
        ),
        ({"provider": "telnyx", "number": f"+1{area}5550179", "credentialId": "missing"}, "credentialId"),
        ({"provider": "vapi", "sipUri": "sip:me@example.com"}, "sipUri"),
        ({"provider": "twilio", "number": f"+1{area}5550180"}, "twilioAccountSid"),
        ({"provider": "byo-phone-number", "number": f"+1{area}5550181"}, "credentialId"),
        (
            {"provider": "vapi", "server": {"url": "https://x.example.com", "headers": {"A": "b"}}},
            "server.headers",
        ),
        ({"provider": "vapi", "fallbackDestination": {"type": "number"}}, "fallbackDestination.number"),
        ({"provider": "fax"}, "provider"),
        (
            {
                "provider": "vapi",
                "hooks": [{"on": "call.ringing", "do": [{"type": "say", "exact": "x" * 20_000}]}],
            },
            "hooks",
        ),
    ):
        response = await http.post("/vapi/phone-number", json=payload, headers=org.bearer)
        assert response.status_code == 400, (payload, response.text)
        error = response.json()
        assert error["statusCode"] == 400 and error["error"] == "Bad Request"
        assert any(m.startswith(field) for m in error["message"]), (field, error)
    patched = await http.patch(
        f"/vapi/phone-number/{byo.id}",
        json={"provider": "vapi", "number": f"+1{area}5550189"},
        headers=org.bearer,
    )
    assert patched.status_code == 400 and patched.json()["message"][0].startswith("provider")


async def test_another_orgs_number_is_not_found_on_every_route(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    org: OrgCreds,
    other_org: OrgCreds,
    area_codes: AreaCodes,
) -> None:
    mine, theirs = sdk(live_server, org), sdk(live_server, other_org)
    created = await call(
        mine.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Vapi(number_desired_area_code=area_codes.take()),
    )
    for fn, args, kwargs in (
        (theirs.phone_numbers.get, (created.id,), {}),
        (
            theirs.phone_numbers.update,
            (created.id,),
            {"request": UpdatePhoneNumbersRequestBody_Vapi(name="x")},
        ),
        (theirs.phone_numbers.delete, (created.id,), {}),
    ):
        with pytest.raises(ApiError) as denied:
            await call(fn, *args, **kwargs)
        assert denied.value.status_code == 404 and denied.value.body["error"] == "Not Found"
    assert await call(theirs.phone_numbers.list) == []
    assert (await call(theirs.phone_numbers.phone_number_controller_find_all_paginated)).results == []
    missing = await http.get("/vapi/phone-number/00000000-0000-7000-8000-000000000000", headers=org.bearer)
    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    # The number is taken: the other org cannot import it either.
    taken = await http.post(
        "/vapi/phone-number",
        json={"provider": "byo-phone-number", "number": created.number, "credentialId": "trunk"},
        headers=other_org.bearer,
    )
    assert taken.status_code == 409 and taken.json()["error"] == "Conflict"
    assert (await v1_get(http, org, created.id))["name"] is None
    with pytest.raises(ApiError) as denied:
        await call(sdk(live_server, org, token="key_nope.nope").phone_numbers.list)
    assert denied.value.status_code == 401 and denied.value.body["statusCode"] == 401
