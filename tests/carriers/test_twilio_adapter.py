"""The Twilio adapter against the fake Twilio: every operation and every error mapping."""

from __future__ import annotations

from typing import Any

import pytest

from numberplane.carriers.base import (
    CarrierAuthError,
    CarrierNotFound,
    CarrierRejected,
    CarrierUnavailable,
    NoNumbersAvailable,
    NumberConfig,
    NumberUnavailable,
    SearchQuery,
)
from numberplane.carriers.registry import adapter_for
from numberplane.carriers.urls import number_config_for
from tests.carriers.conftest import account, twilio_adapter
from tests.fakes.twilio import FakeTwilio

CONFIG = number_config_for(
    carrier="twilio", public_url="https://np.example.com", sms=True, friendly_name="Support line"
)


async def test_verify_credentials_with_auth_token_and_with_api_key(fake_twilio: FakeTwilio) -> None:
    await twilio_adapter(fake_twilio).verify_credentials()
    await twilio_adapter(fake_twilio, api_key=True).verify_credentials()
    # One cheap authenticated call each, accepted by the fake (which checks Basic auth).
    checks = [r for r in fake_twilio.requests if r["op"] == "account"]
    assert len(checks) == 2 and all(r["method"] == "GET" for r in checks)
    assert all("error" not in r and "fault" not in r for r in checks)


async def test_bad_credentials_name_twilio(fake_twilio: FakeTwilio) -> None:
    with pytest.raises(CarrierAuthError) as err:
        await twilio_adapter(fake_twilio, auth_token="wrong").verify_credentials()
    assert err.value.carrier == "twilio"
    assert "Twilio" in err.value.message and "20003" in err.value.message
    assert "wrong" not in err.value.message
    with pytest.raises(CarrierAuthError):
        await twilio_adapter(fake_twilio, auth_token="wrong").search(SearchQuery(area_code="415"))


async def test_another_accounts_sid_is_an_auth_error(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio, api_key=True, account_sid="AC" + "0" * 32)
    with pytest.raises(CarrierAuthError) as err:
        await adapter.verify_credentials()
    assert "AC" + "0" * 32 in err.value.message


async def test_an_api_key_account_proves_its_auth_token_too(fake_twilio: FakeTwilio) -> None:
    """Twilio signs webhooks with the auth token, not the key: a wrong one is caught at registration."""
    config = {"account_sid": fake_twilio.account_sid, "api_key_sid": fake_twilio.api_key_sid}

    def with_token(token: str) -> Any:
        creds = {"api_key_secret": fake_twilio.api_key_secret, "auth_token": token}
        return adapter_for(account("twilio", {**config, "api_base_url": fake_twilio.url}, creds), db=None)  # type: ignore[arg-type]

    await with_token(fake_twilio.auth_token).verify_credentials()
    assert len(fake_twilio.requests_for("account")) == 2  # the key, then the token
    with pytest.raises(CarrierAuthError) as err:
        await with_token("not-the-token").verify_credentials()
    assert "auth_token" in err.value.message and "not-the-token" not in err.value.message


async def test_search_local_and_toll_free(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    found = await adapter.search(SearchQuery(country="US", area_code="415", limit=5))
    assert len(found) == 5
    assert all(n.phone_number.startswith("+1415") and n.area_code == "415" for n in found)
    assert found[0].capabilities["voice"] and found[0].country == "US"
    toll_free = await adapter.search(SearchQuery(number_type="toll_free", area_code="888", limit=2))
    assert [n.phone_number[:5] for n in toll_free] == ["+1888", "+1888"]
    contains = await adapter.search(SearchQuery(area_code="415", contains="0105"))
    assert [n.phone_number for n in contains] == ["+14155550105"]
    (search,) = fake_twilio.requests_for("search")[:1]
    assert search["path"].endswith("/AvailablePhoneNumbers/US/Local.json")
    assert ("AreaCode", "415") in search["query"]


async def test_search_with_nothing_left_is_no_numbers_available(fake_twilio: FakeTwilio) -> None:
    fake_twilio.sold_out.add("415")
    with pytest.raises(NoNumbersAvailable) as err:
        await twilio_adapter(fake_twilio).search(SearchQuery(area_code="415"))
    assert "415" in err.value.message and err.value.carrier == "twilio"


async def test_search_error_21452_is_no_numbers_available(fake_twilio: FakeTwilio) -> None:
    fake_twilio.faults.fail("search", 400, code=21452, message="No phone numbers found in area code 415")
    with pytest.raises(NoNumbersAvailable):
        await twilio_adapter(fake_twilio).search(SearchQuery(area_code="415"))


async def test_search_in_a_country_twilio_does_not_serve_is_rejected(fake_twilio: FakeTwilio) -> None:
    with pytest.raises(CarrierRejected):
        await twilio_adapter(fake_twilio).search(SearchQuery(country="ZZ"))
    with pytest.raises(CarrierRejected):
        await twilio_adapter(fake_twilio).search(SearchQuery(number_type="voip"))


async def test_5xx_and_429_are_unavailable_with_retry_after(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    fake_twilio.faults.fail("search", 503, retry_after=7)
    with pytest.raises(CarrierUnavailable) as err:
        await adapter.search(SearchQuery(area_code="415"))
    assert err.value.retry_after == 7 and err.value.retriable and err.value.carrier == "twilio"
    fake_twilio.faults.fail("search", 429, retry_after=2)
    with pytest.raises(CarrierUnavailable) as err:
        await adapter.search(SearchQuery(area_code="415"))
    assert err.value.retry_after == 2
    fake_twilio.faults.fail("search", 500)
    with pytest.raises(CarrierUnavailable) as err:
        await adapter.search(SearchQuery(area_code="415"))
    assert err.value.retry_after is None


async def test_timeout_is_unavailable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.faults.timeout("search")
    with pytest.raises(CarrierUnavailable) as err:
        await twilio_adapter(fake_twilio, timeout_seconds=0.3).search(SearchQuery(area_code="415"))
    assert "did not answer" in err.value.message


async def test_unreachable_carrier_is_unavailable(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    fake_twilio.stop()
    with pytest.raises(CarrierUnavailable) as err:
        await adapter.verify_credentials()
    assert "could not reach Twilio" in err.value.message


async def test_buy_points_the_number_at_numberplane(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    bought = await adapter.buy(phone_number="+14155550100", reference="ord_1", config=CONFIG)
    assert bought.phone_number == "+14155550100" and bought.carrier_number_id.startswith("PN")
    assert bought.status == "active" and bought.voice_url == CONFIG.voice_url
    held = fake_twilio.by_number("+14155550100")
    assert held is not None
    assert held["voice_url"] == "https://np.example.com/voice/twilio"
    assert held["voice_method"] == "POST"
    assert held["status_callback"] == "https://np.example.com/voice/twilio/status"
    assert held["sms_url"] == "https://np.example.com/sms/twilio"
    assert held["friendly_name"] == "Support line"
    assert fake_twilio.purchases == ["+14155550100"]


async def test_buy_a_taken_number_is_number_unavailable(fake_twilio: FakeTwilio) -> None:
    fake_twilio.taken.add("+14155550101")
    with pytest.raises(NumberUnavailable) as err:
        await twilio_adapter(fake_twilio).buy(phone_number="+14155550101", reference="r", config=CONFIG)
    assert "21422" in err.value.message
    assert fake_twilio.purchases == []


async def test_buy_errors_map(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    fake_twilio.faults.fail("buy", 400, code=21452, message="No phone numbers found")
    with pytest.raises(NoNumbersAvailable):
        await adapter.buy(phone_number="+14155550102", reference="r", config=CONFIG)
    fake_twilio.faults.fail("buy", 400, code=21631, message="Phone Number Requires an Address")
    with pytest.raises(CarrierRejected) as rejected:
        await adapter.buy(phone_number="+14155550102", reference="r", config=CONFIG)
    assert "21631" in rejected.value.message
    fake_twilio.faults.fail("buy", 500, retry_after=30)
    with pytest.raises(CarrierUnavailable) as unavailable:
        await adapter.buy(phone_number="+14155550102", reference="r", config=CONFIG)
    assert unavailable.value.retry_after == 30
    with pytest.raises(CarrierAuthError):
        await twilio_adapter(fake_twilio, auth_token="nope").buy(
            phone_number="+14155550102", reference="r", config=CONFIG
        )
    assert fake_twilio.purchases == []


async def test_buy_timeout_buys_nothing_and_find_says_so(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio, timeout_seconds=0.3)
    fake_twilio.faults.timeout("buy")
    with pytest.raises(CarrierUnavailable):
        await adapter.buy(phone_number="+14155550103", reference="r", config=CONFIG)
    assert await adapter.find(phone_number="+14155550103") is None
    assert fake_twilio.purchases == []


async def test_lost_response_after_purchase_is_resolved_by_find(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio, timeout_seconds=0.3)
    fake_twilio.faults.lose_response("buy")
    with pytest.raises(CarrierUnavailable):
        await adapter.buy(phone_number="+14155550104", reference="r", config=CONFIG)
    found = await adapter.find(phone_number="+14155550104", reference="r")
    assert found is not None and found.status == "active"
    assert found.voice_url == CONFIG.voice_url
    assert fake_twilio.purchases == ["+14155550104"]
    (lookup,) = fake_twilio.requests_for("list")
    assert ("PhoneNumber", "+14155550104") in lookup["query"]


async def test_find_matches_the_exact_number_only(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    fake_twilio.add_owned("+14155550110")
    assert await adapter.find(phone_number="+1415555011") is None
    assert await adapter.find(phone_number="+14155550111") is None
    assert (await adapter.find(phone_number="+14155550110")) is not None


async def test_configure_rewrites_the_webhooks(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    held = fake_twilio.add_owned("+14155550112", voice_url="https://elsewhere.example/voice")
    configured = await adapter.configure(carrier_number_id=held["sid"], config=CONFIG)
    assert configured.voice_url == CONFIG.voice_url
    assert fake_twilio.by_number("+14155550112")["voice_url"] == CONFIG.voice_url  # type: ignore[index]
    # None leaves a field as the carrier has it.
    await adapter.configure(carrier_number_id=held["sid"], config=NumberConfig(friendly_name="x"))
    assert fake_twilio.by_number("+14155550112")["voice_url"] == CONFIG.voice_url  # type: ignore[index]
    with pytest.raises(CarrierNotFound):
        await adapter.configure(carrier_number_id="PN" + "0" * 32, config=CONFIG)


async def test_release_is_idempotent(fake_twilio: FakeTwilio) -> None:
    adapter = twilio_adapter(fake_twilio)
    held = fake_twilio.add_owned("+14155550113")
    await adapter.release(carrier_number_id=held["sid"])
    assert "+14155550113" not in fake_twilio.owned_numbers()
    await adapter.release(carrier_number_id=held["sid"])  # 404 at Twilio: already released
    fake_twilio.faults.fail("release", 503)
    with pytest.raises(CarrierUnavailable):
        await adapter.release(carrier_number_id=held["sid"])


async def test_list_owned_follows_pages(fake_twilio: FakeTwilio) -> None:
    numbers = {f"+1415555012{i}" for i in range(5)}
    for number in sorted(numbers):
        fake_twilio.add_owned(number)
    adapter = twilio_adapter(fake_twilio, page_size=2)
    owned = [n async for n in adapter.list_owned()]
    assert {n.phone_number for n in owned} == numbers
    assert len(owned) == 5
    assert len(fake_twilio.requests_for("list")) == 3


async def test_list_owned_is_bounded(fake_twilio: FakeTwilio) -> None:
    for i in range(5):
        fake_twilio.add_owned(f"+1415555013{i}")
    adapter = twilio_adapter(fake_twilio, page_size=2, max_pages=2)
    with pytest.raises(CarrierRejected) as err:
        _ = [n async for n in adapter.list_owned()]
    assert "max_pages" in err.value.message
