"""What one API writes, every other API (and /v1) reads back consistently."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httpx
from retell import Retell
from signalwire.rest import RestClient
from vocode import Vocode

from tests.dialects.helpers import make_agent, v1_get
from tests.support import LiveServer, OrgCreds


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _views(http: httpx.AsyncClient, org: OrgCreds, number: dict) -> dict[str, dict]:
    """The same number as each API shows it."""
    e164, enc = number["phone_number"], urllib.parse.quote(number["phone_number"], safe="")
    ref = number["id"]
    responses = {
        "helloannie": await http.get(f"/helloannie/v1/phone-numbers/{ref}", headers=org.bearer),
        "freya": await http.get(f"/freya/api/v2/phone-numbers/{ref}", headers=org.bearer),
        "signalwire": await http.get(f"/api/relay/rest/phone_numbers/{ref}", auth=org.basic),
        "zudu": await http.get(f"/zudu/api/phone-numbers/{enc}", headers=org.key_headers),
        "retell": await http.get(f"/retell/get-phone-number/{e164}", headers=org.bearer),
        "vocode": await http.get("/vocode/v1/numbers", params={"phone_number": e164}, headers=org.bearer),
    }
    for name, response in responses.items():
        assert response.status_code == 200, (name, response.text)
    return {
        "helloannie": responses["helloannie"].json()["data"],
        "freya": responses["freya"].json()["data"]["result"]["phoneNumber"],
        "signalwire": responses["signalwire"].json(),
        "zudu": responses["zudu"].json()["data"],
        "retell": responses["retell"].json(),
        "vocode": responses["vocode"].json(),
    }


async def test_a_number_bought_through_vocode_reads_the_same_everywhere(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    vocode = Vocode(token=org.token, base_url=live_server.url + "/vocode")
    bought = await call(
        vocode.numbers.buy_number,
        area_code=area_codes.take(),
        inbound_agent={"name": "Concierge", "prompt": {"content": "Help callers."}, "voice": "alloy"},
    )
    agent_id = bought.inbound_agent.id
    await call(vocode.numbers.update_number, phone_number=bought.number, label="Concierge line")
    core = await v1_get(http, org, bought.number)
    assert core["inbound_agents"][0]["agent_id"] == agent_id and core["name"] == "Concierge line"

    zudu = (await http.get("/zudu/api/phone-numbers", headers=org.key_headers)).json()["data"]
    listed = next(n for n in zudu["phone_numbers"] if n["phone_number"] == bought.number)
    assert listed["inbound_agent_id"] == agent_id and listed["nickname"] == "Concierge line"

    views = await _views(http, org, core)
    assert views["helloannie"]["botId"] == agent_id and views["helloannie"]["name"] == "Concierge line"
    assert views["freya"]["config"]["inboundAgentId"] == agent_id
    assert (
        views["freya"]["inboundAgentName"] == "Concierge"
        and views["freya"]["friendlyName"] == "Concierge line"
    )
    assert views["signalwire"]["name"] == "Concierge line" and views["signalwire"]["number"] == bought.number
    assert views["retell"]["inbound_agents"][0]["agent_id"] == agent_id
    assert views["retell"]["nickname"] == "Concierge line"
    assert views["vocode"]["inbound_agent"]["prompt"]["content"] == "Help callers."
    assert views["vocode"]["inbound_agent"]["voice"]["type"] == "voice_azure"
    assert views["vocode"]["inbound_agent"]["voice"]["voice_name"] == "alloy"
    stamps = {views["retell"]["last_modification_timestamp"], views["zudu"]["last_modification_timestamp"]}
    assert stamps == {core["last_modification_timestamp"]}


async def test_writes_through_each_api_read_back_through_the_others(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    retell = Retell(api_key=org.token, base_url=live_server.url + "/retell", max_retries=0)
    signalwire = RestClient(project=org.key_id, token=org.secret, host=live_server.host)
    bot = await make_agent(http, org, "Bot")
    dialer = await make_agent(http, org, "Dialer")
    created = await call(retell.phone_number.create, area_code=int(area_codes.take()), nickname="Retell made")
    e164 = created.phone_number
    core = await v1_get(http, org, e164)

    # A bot attached through HelloAnnie is the number's inbound agent in Retell's view.
    attached = await http.post(
        f"/helloannie/v1/phone-numbers/{core['id']}/attach", json={"botId": bot["id"]}, headers=org.bearer
    )
    assert attached.status_code == 200
    seen = await call(retell.phone_number.retrieve, e164)
    assert [a.agent_id for a in seen.inbound_agents or []] == [bot["id"]] and seen.inbound_agent_id == bot[
        "id"
    ]

    # A SignalWire call_request_url is /v1's call_handler.request_url.
    await call(
        signalwire.phone_numbers.update,
        core["id"],
        call_handler="laml_webhooks",
        call_request_url="https://cust.example.com/laml",
    )
    assert (await v1_get(http, org, e164))["call_handler"]["request_url"] == "https://cust.example.com/laml"

    # Zudu's outbound agent is Freya's outboundAgentId; Freya's SIP trunk is Retell's trunk config.
    zudu = await http.patch(
        f"/zudu/api/phone-numbers/{urllib.parse.quote(e164, safe='')}",
        json={"outbound_agent_id": dialer["id"]},
        headers=org.key_headers,
    )
    assert zudu.status_code == 200
    freya = await http.put(
        "/freya/api/v2/phone-numbers",
        json={
            "workspaceId": org.org_id,
            "phoneNumbers": [
                {
                    "id": core["id"],
                    "friendlyName": "Freya named",
                    "config": {"sipOutbound": {"endpoint": "trunk.example.com", "transportProtocol": "TCP"}},
                }
            ],
        },
        headers=org.bearer,
    )
    assert freya.status_code == 200
    assert freya.json()["data"]["result"]["updated"][0]["config"]["outboundAgentId"] == dialer["id"]
    seen = await call(retell.phone_number.retrieve, e164)
    assert seen.nickname == "Freya named" and seen.outbound_agent_id == dialer["id"]
    assert seen.sip_outbound_trunk_config is not None
    assert seen.sip_outbound_trunk_config.termination_uri == "trunk.example.com"
    assert seen.sip_outbound_trunk_config.transport == "TCP"

    views = await _views(http, org, core)
    assert views["helloannie"]["botId"] == bot["id"] and views["helloannie"]["name"] == "Freya named"
    assert views["signalwire"]["call_request_url"] == "https://cust.example.com/laml"
    assert (
        views["zudu"]["inbound_agent_id"] == bot["id"] and views["zudu"]["outbound_agent_id"] == dialer["id"]
    )
    assert views["vocode"]["inbound_agent"]["id"] == bot["id"] and views["vocode"]["label"] == "Freya named"

    # The Vocode SDK parses a number whose agent was made elsewhere, with no voice stored.
    vocode = Vocode(token=org.token, base_url=live_server.url + "/vocode")
    embedded = (await call(vocode.numbers.get_number, phone_number=e164)).inbound_agent
    assert embedded.id == bot["id"] and embedded.name == "Bot" and embedded.voice.type == "voice_vocode"

    # Released through one API, the number is gone from all of them.
    assert (
        await http.delete(f"/api/relay/rest/phone_numbers/{core['id']}", auth=org.basic)
    ).status_code == 204
    enc = urllib.parse.quote(e164, safe="")
    gone = {
        "helloannie": await http.get(f"/helloannie/v1/phone-numbers/{core['id']}", headers=org.bearer),
        "freya": await http.get(f"/freya/api/v2/phone-numbers/{core['id']}", headers=org.bearer),
        "zudu": await http.get(f"/zudu/api/phone-numbers/{enc}", headers=org.key_headers),
        "retell": await http.get(f"/retell/get-phone-number/{e164}", headers=org.bearer),
        "vocode": await http.get("/vocode/v1/numbers", params={"phone_number": e164}, headers=org.bearer),
    }
    assert {k: r.status_code for k, r in gone.items()} == {
        "helloannie": 404,
        "freya": 404,
        "zudu": 404,
        "retell": 422,
        "vocode": 404,
    }
    assert (await v1_get(http, org, core["id"]))["status"] == "released"
