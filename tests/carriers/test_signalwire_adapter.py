"""The SignalWire adapter against the fake SignalWire RELAY REST API, with every error mapping."""

from __future__ import annotations

import pytest

from numberplane.carriers.base import (
    CarrierAuthError,
    CarrierNotFound,
    CarrierRejected,
    CarrierUnavailable,
    NoNumbersAvailable,
    NumberUnavailable,
    SearchQuery,
)
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.signalwire import SignalWireCarrier
from numberplane.carriers.urls import number_config_for
from tests.carriers.conftest import signalwire_adapter
from tests.fakes.signalwire import FakeSignalWire

CONFIG = number_config_for(
    carrier="signalwire", public_url="https://np.example.com", sms=True, friendly_name="Sales"
)


def test_base_url_defaults_to_the_space() -> None:
    account = CarrierAccount(id="a", carrier="signalwire", config={"space": "acme", "project_id": "p"})
    assert SignalWireCarrier(account=account, credentials={}).base_url == "https://acme.signalwire.com"
    account.config = {"space": "acme.signalwire.com", "project_id": "p"}
    assert SignalWireCarrier(account=account, credentials={}).base_url == "https://acme.signalwire.com"


async def test_verify_credentials(fake_signalwire: FakeSignalWire) -> None:
    await signalwire_adapter(fake_signalwire).verify_credentials()
    with pytest.raises(CarrierAuthError) as err:
        await signalwire_adapter(fake_signalwire, api_token="PTwrong").verify_credentials()
    assert err.value.carrier == "signalwire" and "SignalWire" in err.value.message
    assert "Unauthorized" in err.value.message and "PTwrong" not in err.value.message


async def test_search(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire)
    found = await adapter.search(SearchQuery(area_code="212", limit=3))
    assert len(found) == 3 and all(n.phone_number.startswith("+1212") for n in found)
    assert found[0].locality == "FAKEVILLE" and found[0].capabilities["sms"]
    tf = await adapter.search(SearchQuery(number_type="toll_free", area_code="877", limit=1))
    assert tf[0].phone_number.startswith("+1877")
    (first, second) = fake_signalwire.requests_for("search")
    assert dict(first["query"]) == {"number_type": "local", "max_results": "3", "areacode": "212"}
    assert dict(second["query"])["number_type"] == "toll-free"
    with pytest.raises(CarrierRejected):
        await adapter.search(SearchQuery(country="GB"))
    with pytest.raises(CarrierRejected):
        await adapter.search(SearchQuery(number_type="mobile"))
    with pytest.raises(CarrierRejected):  # 422: contains must be 3-7 digits
        await adapter.search(SearchQuery(area_code="212", contains="12345678"))


async def test_search_with_nothing_left(fake_signalwire: FakeSignalWire) -> None:
    fake_signalwire.sold_out.add("212")
    with pytest.raises(NoNumbersAvailable) as err:
        await signalwire_adapter(fake_signalwire).search(SearchQuery(area_code="212"))
    assert "212" in err.value.message


async def test_buy_sets_the_cxml_webhooks(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire)
    bought = await adapter.buy(phone_number="+12125550100", reference="r", config=CONFIG)
    assert bought.status == "active" and bought.voice_url == CONFIG.voice_url
    assert bought.sms_url == CONFIG.sms_url
    held = fake_signalwire.by_number("+12125550100")
    assert held is not None and held["id"] == bought.carrier_number_id
    assert held["call_handler"] == "laml_webhooks"
    assert held["call_request_url"] == "https://np.example.com/voice/signalwire"
    assert held["call_request_method"] == "POST"
    assert held["call_status_callback_url"] == "https://np.example.com/voice/signalwire/status"
    assert held["message_handler"] == "laml_webhooks"
    assert held["message_request_url"] == "https://np.example.com/sms/signalwire"
    assert held["name"] == "Sales"
    (buy,) = fake_signalwire.requests_for("buy")
    assert buy["body"] == {"number": "+12125550100"}


async def test_buy_errors_map(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire, timeout_seconds=0.3)
    fake_signalwire.taken.add("+12125550101")
    with pytest.raises(NumberUnavailable) as err:
        await adapter.buy(phone_number="+12125550101", reference="r", config=CONFIG)
    assert "Invalid Attribute" in err.value.message
    fake_signalwire.faults.fail("buy", 500, retry_after=9)
    with pytest.raises(CarrierUnavailable) as unavailable:
        await adapter.buy(phone_number="+12125550102", reference="r", config=CONFIG)
    assert unavailable.value.retry_after == 9
    fake_signalwire.faults.fail("buy", 400)
    with pytest.raises(CarrierRejected):
        await adapter.buy(phone_number="+12125550102", reference="r", config=CONFIG)
    fake_signalwire.faults.timeout("buy")
    with pytest.raises(CarrierUnavailable):
        await adapter.buy(phone_number="+12125550102", reference="r", config=CONFIG)
    assert await adapter.find(phone_number="+12125550102") is None
    assert fake_signalwire.purchases == []


async def test_lost_response_is_resolved_by_find(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire, timeout_seconds=0.3)
    fake_signalwire.faults.lose_response("buy")
    with pytest.raises(CarrierUnavailable):
        await adapter.buy(phone_number="+12125550103", reference="r", config=CONFIG)
    found = await adapter.find(phone_number="+12125550103", reference="r")
    assert found is not None and found.voice_url is None  # bought, never configured
    assert fake_signalwire.purchases == ["+12125550103"]
    configured = await adapter.configure(carrier_number_id=found.carrier_number_id, config=CONFIG)
    assert configured.voice_url == CONFIG.voice_url


async def test_configure_failing_after_purchase_still_returns_the_number(
    fake_signalwire: FakeSignalWire,
) -> None:
    fake_signalwire.faults.fail("update", 503)
    bought = await signalwire_adapter(fake_signalwire).buy(
        phone_number="+12125550104", reference="r", config=CONFIG
    )
    assert bought.status == "active" and bought.voice_url is None
    assert fake_signalwire.purchases == ["+12125550104"]


async def test_configure_and_handler_drift(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire)
    held = fake_signalwire.add_owned(
        "+12125550105", call_handler="relay_script", call_relay_script_url="https://x.example/swml"
    )
    (seen,) = [n async for n in adapter.list_owned()]
    assert seen.voice_url is None  # calls go to a SWML script, not to Numberplane
    configured = await adapter.configure(carrier_number_id=held["id"], config=CONFIG)
    assert configured.voice_url == CONFIG.voice_url
    with pytest.raises(CarrierNotFound):
        await adapter.configure(carrier_number_id="00000000-0000-0000-0000-000000000000", config=CONFIG)


async def test_release_is_idempotent(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire)
    held = fake_signalwire.add_owned("+12125550106")
    await adapter.release(carrier_number_id=held["id"])
    assert fake_signalwire.owned_numbers() == set()
    await adapter.release(carrier_number_id=held["id"])
    fake_signalwire.faults.fail("release", 422, message="Number has an active E911 address")
    with pytest.raises(CarrierRejected):
        await adapter.release(carrier_number_id=held["id"])


async def test_list_owned_follows_page_tokens_and_is_bounded(fake_signalwire: FakeSignalWire) -> None:
    numbers = {f"+1212555011{i}" for i in range(5)}
    for n in sorted(numbers):
        fake_signalwire.add_owned(n)
    owned = [n async for n in signalwire_adapter(fake_signalwire, page_size=2).list_owned()]
    assert {n.phone_number for n in owned} == numbers and len(owned) == 5
    assert any(k == "page_token" for r in fake_signalwire.requests_for("list") for k, _ in r["query"])
    with pytest.raises(CarrierRejected):
        _ = [n async for n in signalwire_adapter(fake_signalwire, page_size=2, max_pages=2).list_owned()]


async def test_import_number(fake_signalwire: FakeSignalWire) -> None:
    adapter = signalwire_adapter(fake_signalwire)
    imported = await adapter.import_number(phone_number="+12125550120")  # type: ignore[attr-defined]
    assert imported.phone_number == "+12125550120"
    assert fake_signalwire.purchases == []  # imported, not bought
    with pytest.raises(CarrierRejected):
        await adapter.import_number(phone_number="+12125550120")  # type: ignore[attr-defined]
