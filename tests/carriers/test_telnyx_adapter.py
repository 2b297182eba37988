"""The Telnyx adapter against the fake Telnyx: asynchronous orders, recovery by customer_reference,
connection routing, and every error mapping."""

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
from numberplane.carriers.urls import number_config_for
from tests.carriers.conftest import telnyx_adapter
from tests.fakes.telnyx import FakeTelnyx

CONFIG = number_config_for(
    carrier="telnyx", public_url="https://np.example.com", sms=False, friendly_name=None
)


async def test_verify_credentials(fake_telnyx: FakeTelnyx) -> None:
    await telnyx_adapter(fake_telnyx).verify_credentials()
    assert len(fake_telnyx.requests_for("texml")) == 1  # the key and the application, in one call
    plain = fake_telnyx.connection_id
    await telnyx_adapter(fake_telnyx, texml_application_id=None, connection_id=plain).verify_credentials()
    assert [r["path"] for r in fake_telnyx.requests_for("connection")] == [f"/v2/connections/{plain}"]
    # A connection id that is not the key's own is refused: registering it proves nothing.
    with pytest.raises(CarrierRejected) as not_theirs:
        await telnyx_adapter(fake_telnyx, texml_application_id=None, connection_id="1").verify_credentials()
    assert "no connection 1" in not_theirs.value.message
    with pytest.raises(CarrierRejected) as wrong_app:
        await telnyx_adapter(fake_telnyx, texml_application_id="42").verify_credentials()
    assert "no TeXML application 42" in wrong_app.value.message
    with pytest.raises(CarrierAuthError) as err:
        await telnyx_adapter(fake_telnyx, api_key="KEYwrong").verify_credentials()
    assert err.value.carrier == "telnyx" and "Telnyx" in err.value.message
    assert "10009" in err.value.message and "KEYwrong" not in err.value.message


async def test_search(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx)
    found = await adapter.search(SearchQuery(area_code="312", limit=4))
    assert len(found) == 4 and all(n.phone_number.startswith("+1312") for n in found)
    assert found[0].monthly_cost == "1.00" and found[0].currency == "USD"
    assert found[0].capabilities["voice"] and found[0].region == "CA"
    (request,) = fake_telnyx.requests_for("search")
    query = dict(request["query"])
    assert query["filter[national_destination_code]"] == "312"
    assert query["filter[phone_number_type]"] == "local"
    assert query["filter[best_effort]"] == "false"
    toll_free = await adapter.search(SearchQuery(number_type="toll_free", area_code="888", limit=1))
    assert toll_free[0].phone_number.startswith("+1888")


async def test_search_with_nothing_left(fake_telnyx: FakeTelnyx) -> None:
    fake_telnyx.sold_out.add("312")
    with pytest.raises(NoNumbersAvailable) as err:
        await telnyx_adapter(fake_telnyx).search(SearchQuery(area_code="312"))
    assert "312" in err.value.message


async def test_search_errors(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx, timeout_seconds=0.3)
    fake_telnyx.faults.fail("search", 503, retry_after=11)
    with pytest.raises(CarrierUnavailable) as err:
        await adapter.search(SearchQuery(area_code="312"))
    assert err.value.retry_after == 11 and err.value.carrier == "telnyx"
    fake_telnyx.faults.timeout("search")
    with pytest.raises(CarrierUnavailable):
        await adapter.search(SearchQuery(area_code="312"))
    fake_telnyx.faults.fail("search", 422, code="10032", message="Invalid enumerated value")
    with pytest.raises(CarrierRejected) as rejected:
        await adapter.search(SearchQuery(area_code="312"))
    assert "10032" in rejected.value.message


async def test_buy_completes_asynchronously_within_the_poll_budget(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx, order_poll_attempts=3)
    bought = await adapter.buy(phone_number="+13125550100", reference="ord_abc", config=CONFIG)
    assert bought.status == "active" and bought.phone_number == "+13125550100"
    assert bought.reference == "ord_abc"
    held = fake_telnyx.by_number("+13125550100")
    assert held is not None and bought.carrier_number_id == held["id"]
    assert held["connection_id"] == fake_telnyx.texml_application_id
    assert held["customer_reference"] == "ord_abc"
    # The TeXML application now sends calls to Numberplane.
    app = fake_telnyx.applications[fake_telnyx.texml_application_id]
    assert app["voice_url"] == "https://np.example.com/voice/telnyx" and app["voice_method"] == "post"
    assert app["status_callback"] == "https://np.example.com/voice/telnyx/status"
    assert bought.voice_url == "https://np.example.com/voice/telnyx"
    (order,) = fake_telnyx.requests_for("order")
    assert order["body"] == {
        "phone_numbers": [{"phone_number": "+13125550100"}],
        "connection_id": fake_telnyx.texml_application_id,
        "customer_reference": "ord_abc",
    }
    assert len(fake_telnyx.requests_for("order_status")) == 2  # pending, then success
    assert fake_telnyx.purchases == ["+13125550100"]


async def test_buy_returns_pending_and_find_resolves_it(fake_telnyx: FakeTelnyx) -> None:
    fake_telnyx.order_polls = 2
    adapter = telnyx_adapter(fake_telnyx, order_poll_attempts=0)
    pending = await adapter.buy(phone_number="+13125550101", reference="ord_p", config=CONFIG)
    assert pending.status == "pending" and pending.reference == "ord_p"
    assert pending.carrier_number_id in fake_telnyx.orders  # the order id until the number exists
    # While in flight the number is not listed; the order is found by customer_reference.
    still = await adapter.find(phone_number="+13125550101", reference="ord_p")
    assert still is not None and still.status == "pending"
    done = await adapter.find(phone_number="+13125550101", reference="ord_p")
    while done is not None and done.status == "pending":
        done = await adapter.find(phone_number="+13125550101", reference="ord_p")
    assert done is not None and done.status == "active"
    assert done.carrier_number_id == fake_telnyx.by_number("+13125550101")["id"]  # type: ignore[index]
    assert ("filter[customer_reference]", "ord_p") in fake_telnyx.requests_for("orders")[0]["query"]
    assert fake_telnyx.purchases == ["+13125550101"]


async def test_lost_order_response_is_found_by_customer_reference(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx, timeout_seconds=0.3)
    fake_telnyx.faults.lose_response("order")
    with pytest.raises(CarrierUnavailable):
        await adapter.buy(phone_number="+13125550102", reference="ord_lost", config=CONFIG)
    assert len(fake_telnyx.orders) == 1
    found = await adapter.find(phone_number="+13125550102", reference="ord_lost")
    assert found is not None and found.status in ("pending", "active")
    fake_telnyx.complete_orders()
    found = await adapter.find(phone_number="+13125550102", reference="ord_lost")
    assert found is not None and found.status == "active"
    assert fake_telnyx.purchases == ["+13125550102"]
    # Without the reference, an order still in flight is invisible: the reference matters.
    assert await adapter.find(phone_number="+13125550199", reference="nope") is None


async def test_failed_order_is_number_unavailable_and_find_reports_failed(fake_telnyx: FakeTelnyx) -> None:
    fake_telnyx.fail_orders.add("+13125550103")
    adapter = telnyx_adapter(fake_telnyx, order_poll_attempts=3)
    with pytest.raises(NumberUnavailable) as err:
        await adapter.buy(phone_number="+13125550103", reference="ord_f", config=CONFIG)
    assert "failed" in err.value.message
    found = await adapter.find(phone_number="+13125550103", reference="ord_f")
    assert found is not None and found.status == "failed"
    assert fake_telnyx.purchases == []


async def test_buy_errors_map(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx)
    fake_telnyx.taken.add("+13125550104")
    with pytest.raises(NumberUnavailable) as err:
        await adapter.buy(phone_number="+13125550104", reference="r", config=CONFIG)
    assert "not available" in err.value.message
    fake_telnyx.faults.fail("order", 500, retry_after=3)
    with pytest.raises(CarrierUnavailable) as unavailable:
        await adapter.buy(phone_number="+13125550105", reference="r", config=CONFIG)
    assert unavailable.value.retry_after == 3
    with pytest.raises(CarrierAuthError):
        await telnyx_adapter(fake_telnyx, api_key="bad").buy(
            phone_number="+13125550105", reference="r", config=CONFIG
        )
    # A connection that does not exist: Telnyx's fault, not the number's.
    with pytest.raises(CarrierRejected) as rejected:
        await telnyx_adapter(fake_telnyx, texml_application_id=None, connection_id="999").buy(
            phone_number="+13125550105", reference="r", config=CONFIG
        )
    assert "connection" in rejected.value.message
    with pytest.raises(CarrierRejected):
        await telnyx_adapter(fake_telnyx, texml_application_id=None).buy(
            phone_number="+13125550105", reference="r", config=CONFIG
        )
    assert fake_telnyx.purchases == []


async def test_status_check_failing_after_the_order_still_reports_the_order(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx, order_poll_attempts=2)
    fake_telnyx.faults.fail("order_status", 500)
    bought = await adapter.buy(phone_number="+13125550106", reference="ord_s", config=CONFIG)
    assert bought.status == "pending"  # never "failed": the order exists


async def test_configure_points_the_number_back_at_our_connection(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx)
    held = fake_telnyx.add_owned("+13125550107", connection_id=fake_telnyx.connection_id)
    owned = [n async for n in adapter.list_owned()]
    assert len(owned) == 1 and owned[0].voice_url is None
    drift = adapter.drift(owned[0], CONFIG)  # type: ignore[attr-defined]
    assert drift == {
        "connection_id": {"carrier": fake_telnyx.connection_id, "expected": fake_telnyx.texml_application_id}
    }
    configured = await adapter.configure(carrier_number_id=held["id"], config=CONFIG)
    assert configured.voice_url == CONFIG.voice_url
    assert fake_telnyx.by_number("+13125550107")["connection_id"] == fake_telnyx.texml_application_id  # type: ignore[index]
    assert adapter.drift(configured, CONFIG) == {}  # type: ignore[attr-defined]
    with pytest.raises(CarrierNotFound):
        await adapter.configure(carrier_number_id="123", config=CONFIG)


async def test_application_voice_url_drift_is_seen_and_repaired(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx)
    bought = await adapter.buy(phone_number="+13125550108", reference="r8", config=CONFIG)
    fake_telnyx.applications[fake_telnyx.texml_application_id]["voice_url"] = "https://evil.example/x"
    fresh = telnyx_adapter(fake_telnyx)
    (seen,) = [n async for n in fresh.list_owned()]
    assert fresh.drift(seen, CONFIG) == {  # type: ignore[attr-defined]
        "voice_url": {"carrier": "https://evil.example/x", "expected": CONFIG.voice_url}
    }
    await fresh.configure(carrier_number_id=bought.carrier_number_id, config=CONFIG)
    app = fake_telnyx.applications[fake_telnyx.texml_application_id]
    assert app["voice_url"] == CONFIG.voice_url and app["friendly_name"] == "Fake TeXML app"


async def test_release(fake_telnyx: FakeTelnyx) -> None:
    adapter = telnyx_adapter(fake_telnyx)
    held = fake_telnyx.add_owned("+13125550109")
    await adapter.release(carrier_number_id=held["id"])
    assert fake_telnyx.owned_numbers() == set()
    await adapter.release(carrier_number_id=held["id"])
    fake_telnyx.faults.timeout("release")
    with pytest.raises(CarrierUnavailable):
        await telnyx_adapter(fake_telnyx, timeout_seconds=0.3).release(carrier_number_id=held["id"])


async def test_list_owned_pages_and_bounds(fake_telnyx: FakeTelnyx) -> None:
    numbers = {f"+1312555011{i}" for i in range(5)}
    for n in sorted(numbers):
        fake_telnyx.add_owned(n)
    owned = [n async for n in telnyx_adapter(fake_telnyx, page_size=2).list_owned()]
    assert {n.phone_number for n in owned} == numbers and len(owned) == 5
    with pytest.raises(CarrierRejected):
        _ = [n async for n in telnyx_adapter(fake_telnyx, page_size=2, max_pages=2).list_owned()]


async def test_find_sends_digits_only(fake_telnyx: FakeTelnyx) -> None:
    fake_telnyx.add_owned("+13125550115")
    found = await telnyx_adapter(fake_telnyx).find(phone_number="+13125550115")
    assert found is not None
    (lookup,) = fake_telnyx.requests_for("list")
    assert ("filter[phone_number]", "13125550115") in lookup["query"]
