"""A vendor's provider field chooses the carrier, in every dialect: the org's account of that
carrier (its default one among several), the sandbox while it is the org's only account, and
otherwise a 4xx naming the field in the dialect's own error shape."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httpx
import pytest
import retell
from retell import Retell
from vocode import Vocode
from vocode.core.api_error import ApiError as VocodeError

from tests.dialects.helpers import connect_twilio, v1_count, v1_get
from tests.fakes.twilio import FakeTwilio
from tests.support import AreaCodes, LiveServer, OrgCreds


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def clients(live_server: LiveServer, org: OrgCreds) -> tuple[Retell, Vocode]:
    return (
        Retell(api_key=org.token, base_url=live_server.url + "/retell", max_retries=0),
        Vocode(token=org.token, base_url=live_server.url + "/vocode"),
    )


async def test_the_sandbox_answers_for_every_provider_while_it_is_the_only_account(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    retell_client, vocode = clients(live_server, org)
    by_retell = await call(
        retell_client.phone_number.create, area_code=int(area_codes.take()), number_provider="telnyx"
    )
    assert (await v1_get(http, org, by_retell.phone_number))["carrier"] == "sandbox"
    by_vocode = await call(
        vocode.numbers.buy_number, area_code=area_codes.take(), telephony_provider="vonage"
    )
    assert by_vocode.telephony_provider == "sandbox"
    zudu = await http.post(
        "/zudu/api/phone-numbers/create",
        json={"phone_number": "+14157770001", "number_provider": "telnyx"},
        headers=org.key_headers,
    )
    assert zudu.status_code == 200 and zudu.json()["data"]["number_provider"] == "telnyx"
    assert (await v1_get(http, org, "+14157770001"))["carrier"] == "sip"
    vapi = await http.post(
        "/vapi/phone-number", json={"provider": "telnyx", "number": "+14157770002"}, headers=org.bearer
    )
    assert vapi.status_code == 201 and vapi.json()["provider"] == "telnyx"


async def test_a_named_provider_picks_the_orgs_account_of_that_carrier(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    org: OrgCreds,
    area_codes: AreaCodes,
    fake_twilio: FakeTwilio,
) -> None:
    area = area_codes.take()
    account = await connect_twilio(http, org, fake_twilio)
    retell_client, vocode = clients(live_server, org)

    bought = await call(retell_client.phone_number.create, area_code=int(area), number_provider="twilio")
    core = await v1_get(http, org, bought.phone_number)
    assert core["carrier"] == "twilio" and core["carrier_account_id"] == account["id"]
    assert bought.phone_number in fake_twilio.owned_numbers()
    assert bought.phone_number_type == "retell-twilio"

    by_vocode = await call(vocode.numbers.buy_number, area_code=area, telephony_provider="twilio")
    assert by_vocode.telephony_provider == "twilio" and by_vocode.number in fake_twilio.owned_numbers()

    fake_twilio.add_owned(f"+1{area}5550150")
    zudu = await http.post(
        "/zudu/api/phone-numbers/create",
        json={"phone_number": f"+1{area}5550150", "number_provider": "twilio", "nickname": "Zudu on Twilio"},
        headers=org.key_headers,
    )
    assert zudu.status_code == 200, zudu.text
    core = await v1_get(http, org, f"+1{area}5550150")
    assert core["carrier_account_id"] == account["id"] and core["origin"] == "imported"

    # No provider named: the org's default account (still the sandbox).
    sandbox = await call(retell_client.phone_number.create, area_code=int(area_codes.take()))
    assert (await v1_get(http, org, sandbox.phone_number))["carrier"] == "sandbox"

    # A carrier the org has no account of: a 4xx naming the field, in each dialect's shape.
    before = await v1_count(http, org)
    with pytest.raises(retell.BadRequestError) as refused:
        await call(retell_client.phone_number.create, area_code=415, number_provider="telnyx")
    assert "number_provider" in refused.value.body["message"]
    with pytest.raises(VocodeError) as vocode_refused:
        await call(vocode.numbers.buy_number, area_code="415", telephony_provider="vonage")
    assert vocode_refused.value.status_code == 422
    assert vocode_refused.value.body.detail[0].loc == ["body", "telephony_provider"]
    mismatch = await http.post(
        "/vocode/v1/numbers/buy",
        json={"telephony_provider": "twilio", "telephony_account_connection": core["id"]},
        headers=org.bearer,
    )
    assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["loc"][-1] == "telephony_provider"
    zudu = await http.post(
        "/zudu/api/phone-numbers/create",
        json={"phone_number": f"+1{area}5550151", "number_provider": "telnyx"},
        headers=org.key_headers,
    )
    assert zudu.status_code == 400 and "number_provider" in zudu.json()["message"]
    not_held = await http.post(
        "/zudu/api/phone-numbers/create",
        json={"phone_number": f"+1{area}5550152", "number_provider": "twilio"},
        headers=org.key_headers,
    )
    assert not_held.status_code == 400 and "does not hold" in not_held.json()["message"]
    vapi = await http.post(
        "/vapi/phone-number", json={"provider": "telnyx", "number": f"+1{area}5550153"}, headers=org.bearer
    )
    assert vapi.status_code == 400 and vapi.json()["message"][0].startswith("provider")
    assert await v1_count(http, org) == before


async def test_among_several_accounts_of_a_carrier_the_default_one(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    org: OrgCreds,
    fake_twilio: FakeTwilio,
    area_codes: AreaCodes,
) -> None:
    second = fake_twilio.add_account()  # a second Twilio account, at the same (fake) Twilio API
    await connect_twilio(http, org, fake_twilio, name="Old")
    chosen = await connect_twilio(http, org, second, default=True, name="New")
    retell_client, _ = clients(live_server, org)
    bought = await call(
        retell_client.phone_number.create, area_code=int(area_codes.take()), number_provider="twilio"
    )
    assert bought.phone_number in second.owned_numbers()
    assert bought.phone_number not in fake_twilio.owned_numbers()
    core = await v1_get(http, org, urllib.parse.quote(bought.phone_number, safe=""))
    assert core["carrier_account_id"] == chosen["id"]
    # Twilio's API has no provider field: it buys on the default account too.
    twilio = await http.post(
        f"/2010-04-01/Accounts/{org.key_id}/IncomingPhoneNumbers.json",
        data={"AreaCode": area_codes.take()},
        auth=org.basic,
    )
    assert twilio.status_code == 201 and twilio.json()["phone_number"] in second.owned_numbers()
