"""The sandbox carrier: deterministic, offline inventory from fictional ranges, behind the same
interface as the real carriers."""

from __future__ import annotations

import httpx
import pytest

from numberplane.carriers.base import CarrierAdapter, NumberUnavailable, SearchQuery
from numberplane.carriers.sandbox import in_inventory, inventory
from numberplane.kernel import e164
from tests.support import OrgCreds


@pytest.mark.parametrize(
    ("query", "prefix", "count"),
    [
        (SearchQuery(country="US", area_code="415"), "+14155550", 75),
        (SearchQuery(country="US", area_code="415", number_type="mobile"), "+14155550", 25),
        (SearchQuery(country="US", area_code="800", number_type="toll_free"), "+18005550", 100),
        (SearchQuery(country="CA", area_code="416"), "+14165550", 75),
        (SearchQuery(country="GB", area_code="20"), "+442079460", 1000),
        (SearchQuery(country="GB", number_type="toll_free"), "+448081570", 1000),
    ],
)
def test_inventory_is_fictional_valid_and_stable(query: SearchQuery, prefix: str, count: int) -> None:
    first = list(inventory(query))
    assert first == list(inventory(query))
    assert len(first) == count and len(set(first)) == count
    for number in first:
        assert number.startswith(prefix)
        assert e164.parse(number).e164 == number
    assert all(in_inventory(n) for n in first[:5])


def test_outside_the_ranges_is_not_for_sale() -> None:
    assert not in_inventory("+14155550200")  # 555-0200 is a real-world range
    assert not in_inventory("+14155551234")
    assert list(inventory(SearchQuery(country="US", area_code="800"))) == []  # toll-free code, local type
    assert list(inventory(SearchQuery(country="FR"))) == []


async def test_adapter_contract_search_buy_find_release(db, org: OrgCreds, area_codes) -> None:
    from sqlalchemy import select

    from numberplane.carriers.models import CarrierAccount
    from numberplane.carriers.registry import adapter_for
    from numberplane.carriers.urls import number_config_for

    async with db.session() as session:
        account = await session.scalar(select(CarrierAccount).where(CarrierAccount.org_id == org.org_id))
    adapter = adapter_for(account, db=db)
    assert isinstance(adapter, CarrierAdapter)
    area = area_codes.take()
    found = await adapter.search(SearchQuery(area_code=area, limit=3))
    assert [n.phone_number for n in found] == [f"+1{area}555010{i}" for i in range(3)]
    config = number_config_for(
        carrier="sandbox", public_url="https://np.example.com", sms=True, friendly_name="x"
    )
    bought = await adapter.buy(phone_number=found[0].phone_number, reference="order-1", config=config)
    assert bought.voice_url == "https://np.example.com/voice/twilio" and bought.reference == "order-1"
    with pytest.raises(NumberUnavailable):
        await adapter.buy(phone_number=found[0].phone_number, reference="order-2", config=config)
    assert (await adapter.find(phone_number=found[0].phone_number)) == bought
    owned = [n.phone_number async for n in adapter.list_owned()]
    assert found[0].phone_number in owned
    await adapter.release(carrier_number_id=bought.carrier_number_id)
    assert await adapter.find(phone_number=found[0].phone_number) is None
    again = await adapter.search(SearchQuery(area_code=area, limit=1))
    assert again[0].phone_number == found[0].phone_number  # back in stock


async def test_search_endpoint_shapes_and_errors(client: httpx.AsyncClient, org: OrgCreds) -> None:
    gb = await client.get(
        "/v1/available-phone-numbers",
        params={"country": "GB", "area_code": "20", "limit": 2},
        headers=org.bearer,
    )
    assert [n["phone_number_pretty"] for n in gb.json()["data"]] == ["+44 20 7946 0000", "+44 20 7946 0001"]
    tf = await client.get(
        "/v1/available-phone-numbers",
        params={"type": "toll_free", "contains": "8885550", "limit": 1},
        headers=org.bearer,
    )
    assert tf.json()["data"][0]["phone_number"].startswith("+18885550")
    empty = await client.get("/v1/available-phone-numbers", params={"area_code": "999"}, headers=org.bearer)
    assert empty.status_code == 200 and empty.json()["data"] == []
    bad = await client.get(
        "/v1/available-phone-numbers", params={"type": "landline", "limit": 500}, headers=org.bearer
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"type", "limit"}
    abroad = await client.get("/v1/available-phone-numbers", params={"country": "FR"}, headers=org.bearer)
    assert abroad.status_code == 422 and "sandbox" in abroad.json()["detail"]
