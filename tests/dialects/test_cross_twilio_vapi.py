"""A number made through Twilio's API or Vapi's shows in /v1 and in every other dialect with the
same settings; released through either, it is gone from both (and kept in /v1 as released)."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httpx
from twilio.rest import Client
from vapi import Vapi
from vapi.phone_numbers import CreatePhoneNumbersRequest_Vapi
from vapi.types import CreateVapiPhoneNumberDtoFallbackDestination_Number, Server

from tests.dialects.helpers import make_agent, v1_get
from tests.support import AreaCodes, LiveServer, OrgCreds


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def clients(live_server: LiveServer, org: OrgCreds) -> tuple[Client, Vapi]:
    twilio = Client(org.key_id, org.secret)
    twilio.api.base_url = live_server.url
    return twilio, Vapi(token=org.token, base_url=live_server.url + "/vapi")


async def views(http: httpx.AsyncClient, org: OrgCreds, core: dict) -> dict[str, Any]:
    """The number as every API shows it (status codes kept for the gone check)."""
    e164, ref = core["phone_number"], core["id"]
    enc = urllib.parse.quote(e164, safe="")
    sid = "PN" + ref.replace("-", "")
    return {
        "twilio": await http.get(
            f"/2010-04-01/Accounts/{org.key_id}/IncomingPhoneNumbers/{sid}.json", auth=org.basic
        ),
        "vapi": await http.get(f"/vapi/phone-number/{ref}", headers=org.bearer),
        "helloannie": await http.get(f"/helloannie/v1/phone-numbers/{ref}", headers=org.bearer),
        "freya": await http.get(f"/freya/api/v2/phone-numbers/{ref}", headers=org.bearer),
        "signalwire": await http.get(f"/api/relay/rest/phone_numbers/{ref}", auth=org.basic),
        "zudu": await http.get(f"/zudu/api/phone-numbers/{enc}", headers=org.key_headers),
        "retell": await http.get(f"/retell/get-phone-number/{e164}", headers=org.bearer),
        "vocode": await http.get("/vocode/v1/numbers", params={"phone_number": e164}, headers=org.bearer),
    }


def bodies(responses: dict[str, httpx.Response]) -> dict[str, dict]:
    for name, response in responses.items():
        assert response.status_code == 200, (name, response.text)
    out = {k: r.json() for k, r in responses.items()}
    out["helloannie"] = out["helloannie"]["data"]
    out["freya"] = out["freya"]["data"]["result"]["phoneNumber"]
    out["zudu"] = out["zudu"]["data"]
    return out


GONE = {
    "twilio": 404,
    "vapi": 404,
    "helloannie": 404,
    "freya": 404,
    "signalwire": 404,
    "zudu": 404,
    "retell": 422,
    "vocode": 404,
}


async def test_a_number_bought_through_twilio_reads_the_same_everywhere(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    twilio, vapi = clients(live_server, org)
    bought = await call(
        twilio.incoming_phone_numbers.create,
        area_code=area_codes.take(),
        friendly_name="Twilio made",
        voice_url="https://cust.example.com/twiml",
        sms_url="https://cust.example.com/sms",
    )
    core = await v1_get(http, org, bought.phone_number)
    assert (
        core["name"] == "Twilio made"
        and core["call_handler"]["request_url"] == "https://cust.example.com/twiml"
    )
    seen = bodies(await views(http, org, core))
    assert seen["vapi"]["name"] == "Twilio made" and seen["vapi"]["provider"] == "vapi"
    assert seen["vapi"]["number"] == bought.phone_number
    assert seen["signalwire"]["name"] == "Twilio made"
    assert seen["signalwire"]["call_handler"] == "laml_webhooks"
    assert seen["signalwire"]["call_request_url"] == "https://cust.example.com/twiml"
    assert seen["signalwire"]["message_request_url"] == "https://cust.example.com/sms"
    assert seen["retell"]["nickname"] == "Twilio made" and seen["zudu"]["nickname"] == "Twilio made"
    assert seen["helloannie"]["name"] == "Twilio made" and seen["vocode"]["label"] == "Twilio made"
    assert seen["freya"]["friendlyName"] == "Twilio made"

    # A change through Vapi reads back through Twilio's API, and the other way round.
    agent = await make_agent(http, org, "Both ways")
    patched = await http.patch(
        f"/vapi/phone-number/{core['id']}",
        json={"name": "Vapi named", "assistantId": agent["id"]},
        headers=org.bearer,
    )
    assert patched.status_code == 200
    fetched = await call(twilio.incoming_phone_numbers(bought.sid).fetch)
    assert fetched.friendly_name == "Vapi named" and fetched.voice_url == "https://cust.example.com/twiml"
    await call(twilio.incoming_phone_numbers(bought.sid).update, friendly_name="Twilio again")
    assert (await call(vapi.phone_numbers.get, core["id"])).name == "Twilio again"

    assert await call(twilio.incoming_phone_numbers(bought.sid).delete) is True
    gone = await views(http, org, core)
    assert {k: r.status_code for k, r in gone.items()} == GONE
    assert (await v1_get(http, org, core["id"]))["status"] == "released"


async def test_a_number_made_through_vapi_reads_the_same_everywhere(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    twilio, vapi = clients(live_server, org)
    agent = await make_agent(http, org, "Vapi agent")
    made = await call(
        vapi.phone_numbers.create,
        request=CreatePhoneNumbersRequest_Vapi(
            number_desired_area_code=area_codes.take(),
            name="Vapi made",
            assistant_id=agent["id"],
            server=Server(url="https://cust.example.com/inbound"),
            fallback_destination=CreateVapiPhoneNumberDtoFallbackDestination_Number(number="+14155550199"),
        ),
    )
    core = await v1_get(http, org, made.id)
    assert core["inbound_agents"][0]["agent_id"] == agent["id"]
    assert core["inbound_webhook_url"] == "https://cust.example.com/inbound"
    seen = bodies(await views(http, org, core))
    assert seen["twilio"]["friendly_name"] == "Vapi made" and seen["twilio"]["phone_number"] == made.number
    assert seen["twilio"]["voice_url"] is None
    by_client = await call(twilio.incoming_phone_numbers(seen["twilio"]["sid"]).fetch)
    assert by_client.friendly_name == "Vapi made" and by_client.origin == "twilio"
    assert seen["retell"]["nickname"] == "Vapi made" and seen["retell"]["inbound_agent_id"] == agent["id"]
    assert seen["retell"]["inbound_webhook_url"] == "https://cust.example.com/inbound"
    assert seen["retell"]["fallback_number"] == "+14155550199"
    assert seen["zudu"]["inbound_agent_id"] == agent["id"]
    assert seen["zudu"]["inbound_webhook_url"] == "https://cust.example.com/inbound"
    assert seen["helloannie"]["botId"] == agent["id"] and seen["helloannie"]["name"] == "Vapi made"
    assert seen["freya"]["config"]["inboundAgentId"] == agent["id"]
    assert seen["vocode"]["inbound_agent"]["id"] == agent["id"] and seen["vocode"]["label"] == "Vapi made"
    assert seen["signalwire"]["name"] == "Vapi made"

    deleted = await call(vapi.phone_numbers.delete, made.id)
    assert deleted.id == made.id
    gone = await views(http, org, core)
    assert {k: r.status_code for k, r in gone.items()} == GONE
    assert (await v1_get(http, org, made.id))["status"] == "released"
