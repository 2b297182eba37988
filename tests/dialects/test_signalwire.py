"""SignalWire RELAY REST through its own SDK (signalwire-sdk RestClient, host on loopback)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from signalwire.rest import RestClient
from signalwire.rest._base import SignalWireRestError

from tests.dialects.helpers import v1_count, v1_get
from tests.support import AreaCodes, LiveServer, OrgCreds

# The response fields the seed (002_510eb934f007741d.txt) documents for the phone-number resource.
SEED_RESPONSE_KEYS = {
    "id",
    "number",
    "name",
    "capabilities",
    "number_type",
    "e911_address_id",
    "created_at",
    "updated_at",
    "next_billed_at",
    "call_handler",
    "calling_handler_resource_id",
    "call_receive_mode",
    "call_request_url",
    "call_request_method",
    "call_fallback_url",
    "call_fallback_method",
    "call_status_callback_url",
    "call_status_callback_method",
    "call_laml_application_id",
    "call_dialogflow_agent_id",
    "call_relay_topic",
    "call_relay_topic_status_callback_url",
    "call_relay_script_url",
    "call_relay_context",
    "call_relay_context_status_callback_url",
    "call_relay_application",
    "call_relay_connector_id",
    "call_sip_endpoint_id",
    "call_verto_resource",
    "call_video_room_id",
    "message_handler",
    "messaging_handler_resource_id",
    "message_request_url",
    "message_request_method",
    "message_fallback_url",
    "message_fallback_method",
    "message_laml_application_id",
    "message_relay_topic",
    "message_relay_context",
    "country_code",
}


def sdk(live_server: LiveServer, org: OrgCreds, token: str | None = None) -> RestClient:
    return RestClient(project=org.key_id, token=token or org.secret, host=live_server.host)


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _buy(client: RestClient, area: str) -> dict[str, Any]:
    """Search a fresh area code and buy the first number offered."""
    found = await call(client.phone_numbers.search, areacode=area, max_results=5)
    assert found["data"], f"no sandbox stock in {area}"
    return dict(await call(client.phone_numbers.create, number=found["data"][0]["number"]))


async def test_seed_import(live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds) -> None:
    client = sdk(live_server, org)
    imported = await call(
        client.imported_numbers.create,
        number="+18885550123",
        number_type="tollfree",
        capabilities=["voice", "sms"],
    )
    assert SEED_RESPONSE_KEYS <= set(imported)
    assert imported["number"] == "+18885550123" and imported["number_type"] == "toll-free"
    assert imported["capabilities"] == ["voice", "sms"] and imported["country_code"] == "US"
    assert imported["call_handler"] is None and imported["call_receive_mode"] == "voice"
    raw = await http.post(
        "/api/relay/rest/imported_phone_numbers",
        json={"number": "+14157774450", "number_type": "longcode"},
        auth=org.basic,
    )
    assert raw.status_code == 201
    assert raw.json()["number_type"] == "longcode" and raw.json()["capabilities"] == [
        "voice",
        "sms",
        "mms",
        "fax",
    ]
    core = await v1_get(http, org, "+18885550123")
    assert core["number_type"] == "toll_free" and core["origin"] == "imported"


async def test_search_purchase_update_release(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    area = area_codes.take()
    found = await call(client.phone_numbers.search, areacode=area, max_results=3)
    assert len(found["data"]) == 3
    first = found["data"][0]
    assert first["number"].startswith(f"+1{area}") and set(first["capabilities"]) == {
        "voice",
        "sms",
        "mms",
        "fax",
    }
    ends = await call(client.phone_numbers.search, areacode=area, ends_with=first["number"][-4:])
    assert [n["number"] for n in ends["data"]] == [first["number"]]

    bought = await call(client.phone_numbers.create, number=first["number"])
    assert SEED_RESPONSE_KEYS <= set(bought)
    assert bought["number"] == first["number"] and bought["number_type"] == "longcode"
    assert bought["next_billed_at"] is not None
    ref = bought["id"]

    updated = await call(
        client.phone_numbers.update,
        ref,
        name="Support",
        call_handler="laml_webhooks",
        call_request_url="https://cust.example.com/voice",
        call_request_method="GET",
        message_handler="laml_webhooks",
        message_request_url="https://cust.example.com/sms",
    )
    assert updated["name"] == "Support" and updated["call_handler"] == "laml_webhooks"
    assert (
        updated["call_request_url"] == "https://cust.example.com/voice"
        and updated["call_request_method"] == "GET"
    )
    assert updated["message_handler"] == "laml_webhooks"
    assert updated["message_request_url"] == "https://cust.example.com/sms"
    core = await v1_get(http, org, ref)
    assert core["call_handler"]["type"] == "laml_webhooks"
    assert core["call_handler"]["request_url"] == "https://cust.example.com/voice"
    assert core["message_handler"]["request_url"] == "https://cust.example.com/sms"

    # Partial: a later PUT of one field keeps the rest of the handler.
    fallback = await call(client.phone_numbers.update, ref, call_fallback_url="https://cust.example.com/fb")
    assert fallback["call_request_url"] == "https://cust.example.com/voice"
    assert fallback["call_fallback_url"] == "https://cust.example.com/fb" and fallback["name"] == "Support"
    swml = await call(client.phone_numbers.set_swml_webhook, ref, "https://cust.example.com/swml")
    assert (
        swml["call_handler"] == "relay_script"
        and swml["call_relay_script_url"] == "https://cust.example.com/swml"
    )
    # A /v1 change reads back here.
    await http.patch(
        f"/v1/phone-numbers/{ref}",
        json={"call_handler": {"type": "laml_webhooks", "request_url": "https://v1.example.com/voice"}},
        headers=org.bearer,
    )
    got = await call(client.phone_numbers.get, ref)
    assert (
        got["call_handler"] == "laml_webhooks" and got["call_request_url"] == "https://v1.example.com/voice"
    )
    assert got["call_relay_script_url"] is None

    assert await call(client.phone_numbers.delete, ref) == {}
    with pytest.raises(SignalWireRestError) as gone:
        await call(client.phone_numbers.get, ref)
    assert gone.value.status_code == 404 and gone.value.body == {"error": "Not Found"}


async def test_list_pages_and_filters(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    bought = []
    for i in range(3):
        number = await _buy(client, area_codes.take())
        await call(client.phone_numbers.update, number["id"], name=f"Line {'XYZ'[i]}")
        bought.append(number)
    page = await call(client.phone_numbers.list, page_size=2)
    assert [n["id"] for n in page["data"]] == [bought[2]["id"], bought[1]["id"]]
    assert page["links"]["next"] and page["links"]["first"] and page["links"]["prev"] is None
    everything = list(await call(lambda: list(client.phone_numbers.paginate(page_size=2))))
    assert [n["id"] for n in everything] == [b["id"] for b in reversed(bought)]
    by_name = await call(client.phone_numbers.list, filter_name="line y")
    assert [n["id"] for n in by_name["data"]] == [bought[1]["id"]]
    by_number = await call(client.phone_numbers.list, filter_number=bought[0]["number"][2:])
    assert [n["id"] for n in by_number["data"]] == [bought[0]["id"]]
    second = await call(client.phone_numbers.list, page_size=2, page_number=1)
    assert [n["id"] for n in second["data"]] == [bought[0]["id"]] and second["links"]["prev"]


async def test_name_and_number_filters_are_separate(
    live_server: LiveServer, org: OrgCreds, area_codes: AreaCodes
) -> None:
    client = sdk(live_server, org)
    area = area_codes.take()
    first = await _buy(client, area)
    second = await _buy(client, area)
    tail = second["number"][-4:]
    # The first number's name holds the second number's last digits.
    await call(client.phone_numbers.update, first["id"], name=f"Suite {tail}")
    by_name = await call(client.phone_numbers.list, filter_name=tail)
    assert [n["id"] for n in by_name["data"]] == [first["id"]]
    by_number = await call(client.phone_numbers.list, filter_number=tail)
    assert [n["id"] for n in by_number["data"]] == [second["id"]]
    both = await call(client.phone_numbers.list, filter_name="suite", filter_number=first["number"][-4:])
    assert [n["id"] for n in both["data"]] == [first["id"]]
    assert (await call(client.phone_numbers.list, filter_name="suite", filter_number=tail))["data"] == []
    # Every number holds its area code's digits; no name does.
    area_only = await call(client.phone_numbers.list, filter_name=area)
    assert area_only["data"] == []


async def test_errors_and_tenancy(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, area_codes
) -> None:
    mine, theirs = sdk(live_server, org), sdk(live_server, other_org)
    found = await call(mine.phone_numbers.search, areacode=area_codes.take(), max_results=2)
    number = await call(mine.phone_numbers.create, number=found["data"][0]["number"])
    for fn, args, kwargs in (
        (theirs.phone_numbers.get, (number["id"],), {}),
        (theirs.phone_numbers.update, (number["id"],), {"name": "Stolen"}),
        (theirs.phone_numbers.delete, (number["id"],), {}),
    ):
        with pytest.raises(SignalWireRestError) as denied:
            await call(fn, *args, **kwargs)
        assert denied.value.status_code == 404 and denied.value.body == {"error": "Not Found"}
    assert (await call(theirs.phone_numbers.list))["data"] == []
    assert (await v1_get(http, org, number["id"]))["name"] is None

    before = await v1_count(http, org)
    with pytest.raises(SignalWireRestError) as taken:
        await call(theirs.phone_numbers.create, number=number["number"])
    assert taken.value.status_code == 422
    assert taken.value.body["errors"][0]["status"] == "422" and taken.value.body["errors"][0]["detail"]
    with pytest.raises(SignalWireRestError) as imported:
        await call(theirs.imported_numbers.create, number=number["number"], number_type="longcode")
    assert imported.value.status_code == 422
    with pytest.raises(SignalWireRestError) as invalid:
        await call(mine.phone_numbers.update, number["id"], call_handler="laml_webhooks")
    assert invalid.value.status_code == 422
    assert invalid.value.body["errors"][0]["title"] == "Invalid Attribute"
    with pytest.raises(SignalWireRestError) as bad_type:
        await call(mine.imported_numbers.create, number="+14157774451", number_type="shortcode")
    assert bad_type.value.status_code == 422
    assert await v1_count(http, org) == before
    with pytest.raises(SignalWireRestError) as denied:
        await call(sdk(live_server, org, token="wrong").phone_numbers.list)
    assert denied.value.status_code == 401 and denied.value.body == {"error": "Unauthorized"}
