"""The fake Twilio speaks Twilio: the official ``twilio`` library drives it and parses every answer,
and what the adapter sends and the fake answers match Twilio's own OpenAPI description
(``data/twilio_api_v2010_subset.json``, cut from twilio/twilio-oai's twilio_api_v2010.json)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from numberplane.carriers.base import SearchQuery
from numberplane.carriers.urls import number_config_for
from tests.carriers.conftest import twilio_adapter
from tests.fakes.twilio import FakeTwilio

SPEC = json.loads((Path(__file__).parent / "data" / "twilio_api_v2010_subset.json").read_text())


def client_for(fake: FakeTwilio, *, api_key: bool = False) -> Client:
    if api_key:
        client = Client(fake.api_key_sid, fake.api_key_secret, fake.account_sid)
    else:
        client = Client(fake.account_sid, fake.auth_token)
    client.api.base_url = fake.url
    return client


def test_twilio_library_drives_the_fake(fake_twilio: FakeTwilio) -> None:
    client = client_for(fake_twilio)
    available = client.available_phone_numbers("US").local.list(area_code=415, limit=3)
    assert len(available) == 3
    assert all(a.phone_number.startswith("+1415") for a in available)
    assert available[0].iso_country == "US" and available[0].capabilities["voice"] is True
    toll_free = client.available_phone_numbers("US").toll_free.list(area_code=888, limit=2)
    assert [t.phone_number[:5] for t in toll_free] == ["+1888", "+1888"]

    created = client.incoming_phone_numbers.create(
        phone_number=available[0].phone_number,
        voice_url="https://np.example.com/voice/twilio",
        voice_method="POST",
        status_callback="https://np.example.com/voice/twilio/status",
        friendly_name="Main line",
    )
    assert created.sid.startswith("PN") and created.account_sid == fake_twilio.account_sid
    assert isinstance(created.date_created, dt.datetime)
    assert created.voice_url == "https://np.example.com/voice/twilio"
    assert created.friendly_name == "Main line" and created.capabilities["sms"] is True

    fetched = client.incoming_phone_numbers(created.sid).fetch()
    assert fetched.phone_number == available[0].phone_number

    updated = client.incoming_phone_numbers(created.sid).update(
        voice_url="https://np.example.com/voice/other", sms_url="https://np.example.com/sms/twilio"
    )
    assert updated.voice_url == "https://np.example.com/voice/other"
    assert updated.sms_url == "https://np.example.com/sms/twilio"

    by_area = client.incoming_phone_numbers.create(area_code="212")
    assert by_area.phone_number.startswith("+1212")
    client.incoming_phone_numbers.create(phone_number=available[1].phone_number)

    # Paging: the library follows next_page_uri until the last page.
    listed = client.incoming_phone_numbers.list(page_size=2)
    assert len(listed) == 3
    assert {n.sid for n in listed} >= {created.sid, by_area.sid}
    exact = client.incoming_phone_numbers.list(phone_number=available[0].phone_number)
    assert [n.sid for n in exact] == [created.sid]

    assert client.incoming_phone_numbers(created.sid).delete() is True
    assert available[0].phone_number not in fake_twilio.owned_numbers()

    # The library reads Twilio's error bodies.
    with pytest.raises(TwilioRestException) as err:
        client.incoming_phone_numbers(created.sid).fetch()
    assert err.value.status == 404 and err.value.code == 20404
    with pytest.raises(TwilioRestException) as err:
        client.incoming_phone_numbers.create(phone_number=available[1].phone_number)
    assert err.value.status == 400 and err.value.code == 21422
    fake_twilio.sold_out.add("213")
    with pytest.raises(TwilioRestException) as err:
        client.incoming_phone_numbers.create(area_code="213")
    assert err.value.code == 21452


def test_twilio_library_with_api_key_and_bad_token(fake_twilio: FakeTwilio) -> None:
    assert client_for(fake_twilio, api_key=True).incoming_phone_numbers.list() == []
    bad = Client(fake_twilio.account_sid, "not-the-token")
    bad.api.base_url = fake_twilio.url
    with pytest.raises(TwilioRestException) as err:
        bad.incoming_phone_numbers("PN" + "0" * 32).fetch()
    assert err.value.status == 401 and err.value.code == 20003


# -- checks against the OpenAPI description -----------------------------------------------------


def _deref(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _deref(SPEC["components"]["schemas"][name])
        return {k: _deref(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v) for v in node]
    return node


def _operation(method: str, path: str) -> dict[str, Any]:
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]  # type: ignore[no-any-return]
    raise AssertionError(f"{method} {path} is not an operation in Twilio's API description")


def _validate(schema: dict[str, Any], instance: Any) -> None:
    OAS30Validator(_deref(schema)).validate(instance)


async def test_adapter_requests_match_the_openapi_description(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio, page_size=1)
    config = number_config_for(
        carrier="twilio", public_url="https://np.example.com", sms=True, friendly_name="A"
    )
    await adapter.verify_credentials()
    await adapter.search(SearchQuery(area_code="415", contains="01"))
    await adapter.search(SearchQuery(number_type="toll_free", limit=2))
    bought = await adapter.buy(phone_number="+14155550100", reference="r1", config=config)
    await adapter.buy(phone_number="+14155550101", reference="r2", config=config)
    await adapter.find(phone_number="+14155550100")
    await adapter.configure(carrier_number_id=bought.carrier_number_id, config=config)
    _ = [n async for n in adapter.list_owned()]
    await adapter.release(carrier_number_id=bought.carrier_number_id)
    assert len(fake_twilio.requests) >= 9
    for request in fake_twilio.requests:
        op = _operation(request["method"], request["path"])
        allowed_query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        sent_query = {k for k, _ in request["query"]}
        assert sent_query <= allowed_query, (request["path"], sent_query - allowed_query)
        if "form" in request:
            body = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
            assert set(request["form"]) <= set(body["properties"]), request["form"]


async def test_fake_responses_match_the_openapi_description(fake_twilio: FakeTwilio) -> None:
    base = f"{fake_twilio.url}/2010-04-01/Accounts/{fake_twilio.account_sid}"
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    async with httpx.AsyncClient(auth=auth, timeout=5) as http:

        async def check(method: str, url: str, status: int, **kwargs: Any) -> Any:
            response = await http.request(method, url, **kwargs)
            assert response.status_code == status, response.text
            op = _operation(method, httpx.URL(url).path)
            assert str(status) in op["responses"]
            if status == 204:
                assert response.content == b""
                return None
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            _validate(schema, response.json())
            return response.json()

        await check("GET", f"{base}.json", 200)
        await check("GET", f"{base}/AvailablePhoneNumbers/US/Local.json", 200, params={"AreaCode": "415"})
        await check("GET", f"{base}/AvailablePhoneNumbers/US/TollFree.json", 200, params={"PageSize": 3})
        created = await check(
            "POST",
            f"{base}/IncomingPhoneNumbers.json",
            201,
            data={"PhoneNumber": "+14155550100", "VoiceUrl": "https://np.example.com/v"},
        )
        await check("POST", f"{base}/IncomingPhoneNumbers.json", 201, data={"AreaCode": "212"})
        listed = await check("GET", f"{base}/IncomingPhoneNumbers.json", 200, params={"PageSize": 1})
        assert listed["next_page_uri"]
        await check("GET", fake_twilio.url + listed["next_page_uri"], 200)
        await check("GET", f"{base}/IncomingPhoneNumbers/{created['sid']}.json", 200)
        await check(
            "POST",
            f"{base}/IncomingPhoneNumbers/{created['sid']}.json",
            200,
            data={"SmsUrl": "https://x.example"},
        )
        await check("DELETE", f"{base}/IncomingPhoneNumbers/{created['sid']}.json", 204)

        # The fake refuses what Twilio's description does not allow.
        typo = await http.post(
            f"{base}/IncomingPhoneNumbers.json", data={"PhoneNumber": "+1", "VoiceURL": "x"}
        )
        assert typo.status_code == 400 and typo.json()["code"] == 20001
        as_json = await http.post(f"{base}/IncomingPhoneNumbers.json", json={"PhoneNumber": "+14155550102"})
        assert as_json.status_code == 400
        bad_url = await http.post(
            f"{base}/IncomingPhoneNumbers.json", data={"PhoneNumber": "+14155550102", "VoiceUrl": "nope"}
        )
        assert bad_url.status_code == 400 and bad_url.json()["code"] == 21502
        nothing = await http.post(f"{base}/IncomingPhoneNumbers.json", data={"FriendlyName": "x"})
        assert nothing.status_code == 400
        assert set(nothing.json()) == {"code", "message", "more_info", "status"}
