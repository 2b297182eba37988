"""The fake SignalWire speaks SignalWire: the official ``signalwire-sdk`` RestClient (which talks
plain HTTP to a loopback host) drives it and reads every answer, including its errors and paging."""

from __future__ import annotations

import pytest
from signalwire.rest import RestClient
from signalwire.rest._base import SignalWireRestError

from tests.fakes.signalwire import FakeSignalWire


def client_for(fake: FakeSignalWire, token: str | None = None) -> RestClient:
    return RestClient(fake.project_id, token or fake.api_token, host=fake.url.removeprefix("http://"))


def test_signalwire_sdk_drives_the_fake(fake_signalwire: FakeSignalWire) -> None:
    client = client_for(fake_signalwire)
    found = client.phone_numbers.search(areacode="212", max_results=3)
    assert len(found["data"]) == 3 and found["data"][0]["number"].startswith("+1212")
    toll_free = client.phone_numbers.search(number_type="toll-free", areacode="888", max_results=1)
    assert toll_free["data"][0]["number"].startswith("+1888")

    bought = client.phone_numbers.create(number=found["data"][0]["number"])
    assert bought["number"] == found["data"][0]["number"] and bought["number_type"] == "longcode"
    assert client.phone_numbers.get(bought["id"])["id"] == bought["id"]

    webhook = client.phone_numbers.set_cxml_webhook(bought["id"], "https://np.example.com/voice/signalwire")
    assert webhook["call_handler"] == "laml_webhooks"
    assert webhook["call_request_url"] == "https://np.example.com/voice/signalwire"
    renamed = client.phone_numbers.update(bought["id"], name="Sales")
    assert renamed["name"] == "Sales"

    for entry in found["data"][1:]:
        client.phone_numbers.create(number=entry["number"])
    # The SDK's paginator follows links.next (page_token) to the end.
    assert len(list(client.phone_numbers.paginate(page_size=1))) == 3

    imported = client.imported_numbers.create(number="+12125550150", number_type="longcode")
    assert imported["number"] == "+12125550150"
    assert fake_signalwire.purchases == [e["number"] for e in found["data"]]

    client.phone_numbers.delete(bought["id"])
    with pytest.raises(SignalWireRestError) as missing:
        client.phone_numbers.get(bought["id"])
    assert missing.value.status_code == 404
    with pytest.raises(SignalWireRestError) as taken:
        client.phone_numbers.create(number=found["data"][1]["number"])
    assert taken.value.status_code == 422


def test_signalwire_sdk_sees_the_fakes_auth_errors(fake_signalwire: FakeSignalWire) -> None:
    with pytest.raises(SignalWireRestError) as err:
        client_for(fake_signalwire, token="PTwrong").phone_numbers.list()
    assert err.value.status_code == 401
