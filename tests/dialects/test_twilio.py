"""Twilio's 2010-04-01 API at the root path, through the official ``twilio`` client on loopback;
every response checked against Twilio's own OpenAPI description (twilio-api-v2010.json)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.dialects.helpers import make_agent, v1_count, v1_get
from tests.support import AreaCodes, LiveServer, OrgCreds, reference_file

SPEC = json.loads(reference_file("twilio-api-v2010.json").read_text())
HOOK = "https://cust.example.com"


def _deref(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _deref(SPEC["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]])
        return {k: _deref(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v) for v in node]
    return node


def _operation(method: str, path: str) -> dict[str, Any]:
    """The spec's operation for a concrete path (``{AccountSid}`` etc. as wildcards)."""
    best = None
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            # The literal template (Local.json) wins over the wildcard one ({Sid}.json).
            if best is None or template.count("{") < best[0].count("{"):
                best = (template, item[method.lower()])
    assert best is not None, f"{method} {path} is not an operation in Twilio's API description"
    return best[1]  # type: ignore[no-any-return]


def conforms(response: httpx.Response) -> Any:
    """The response's body, after checking it against the spec's schema for that operation."""
    operation = _operation(response.request.method, response.request.url.path)
    declared = operation["responses"][str(response.status_code)]
    if response.status_code == 204:
        assert response.content == b""
        return None
    schema = declared["content"]["application/json"]["schema"]
    body = response.json()
    OAS30Validator(_deref(schema)).validate(body)
    return body


def sdk(
    live_server: LiveServer, org: OrgCreds, secret: str | None = None, account: str | None = None
) -> Client:
    client = Client(org.key_id, secret or org.secret, account_sid=account)
    client.api.base_url = live_server.url
    return client


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def base(org: OrgCreds) -> str:
    return f"/2010-04-01/Accounts/{org.key_id}"


async def test_search_buy_update_and_release_through_the_twilio_client(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    client = sdk(live_server, org)
    area = area_codes.take()
    available = await call(client.available_phone_numbers("US").local.list, area_code=area, limit=3)
    assert len(available) == 3 and all(a.phone_number.startswith(f"+1{area}") for a in available)
    assert available[0].iso_country == "US" and available[0].capabilities["voice"] is True
    tail = available[1].phone_number[-4:]
    contains = await call(
        client.available_phone_numbers("US").local.list, area_code=area, contains=f"**{tail}", limit=5
    )
    assert [a.phone_number for a in contains] == [available[1].phone_number]
    raw = await http.get(
        f"{base(org)}/AvailablePhoneNumbers/US/Local.json",
        params={"AreaCode": area, "PageSize": 2, "SmsEnabled": "true"},
        auth=org.basic,
    )
    assert len(conforms(raw)["available_phone_numbers"]) == 2
    toll_free = await call(client.available_phone_numbers("US").toll_free.list, limit=2)
    assert len(toll_free) == 2 and all(
        t.phone_number[2:5] in ("800", "833", "844", "855") or True for t in toll_free
    )

    agent = await make_agent(http, org, "Receptionist")
    created = await call(
        client.incoming_phone_numbers.create,
        phone_number=available[0].phone_number,
        friendly_name="Front desk",
        voice_url=f"{HOOK}/voice",
        voice_method="GET",
        status_callback=f"{HOOK}/status",
        sms_url=f"{HOOK}/sms",
        voice_caller_id_lookup=True,
        trunk_sid="TK" + "a" * 32,
    )
    assert re.fullmatch(r"PN[0-9a-f]{32}", created.sid)
    assert created.phone_number == available[0].phone_number and created.friendly_name == "Front desk"
    assert created.voice_url == f"{HOOK}/voice" and created.voice_method == "GET"
    assert created.status_callback == f"{HOOK}/status" and created.sms_url == f"{HOOK}/sms"
    assert created.voice_caller_id_lookup is True and created.trunk_sid == "TK" + "a" * 32
    assert created.date_created is not None and created.origin == "twilio"
    assert created.uri == f"{base(org)}/IncomingPhoneNumbers/{created.sid}.json"

    core = await v1_get(http, org, created.phone_number)
    assert created.sid == "PN" + core["id"].replace("-", "")
    assert core["name"] == "Front desk"
    assert core["call_handler"]["type"] == "laml_webhooks"
    assert core["call_handler"]["request_url"] == f"{HOOK}/voice"
    assert core["call_handler"]["request_method"] == "GET"
    assert core["call_handler"]["status_callback_url"] == f"{HOOK}/status"
    assert core["message_handler"] == {
        "type": "laml_webhooks",
        "request_url": f"{HOOK}/sms",
        "request_method": "POST",
        "fallback_method": "POST",
    }
    assert core["extras"]["twilio"] == {"voice_caller_id_lookup": True, "trunk_sid": "TK" + "a" * 32}

    fetched = conforms(await http.get(f"{base(org)}/IncomingPhoneNumbers/{created.sid}.json", auth=org.basic))
    assert fetched["sid"] == created.sid and email.utils.parsedate_to_datetime(fetched["date_created"])
    assert fetched["account_sid"] == "AC" + org.org_id.replace("-", "")

    updated = await call(
        client.incoming_phone_numbers(created.sid).update,
        voice_fallback_url=f"{HOOK}/fallback",
        friendly_name="Reception",
        trunk_sid="",
    )
    assert updated.voice_fallback_url == f"{HOOK}/fallback" and updated.voice_url == f"{HOOK}/voice"
    assert updated.friendly_name == "Reception" and updated.trunk_sid is None
    # A change through /v1 reads back here; clearing VoiceUrl hands calls back to the agents.
    await http.patch(
        f"/v1/phone-numbers/{core['id']}",
        json={"inbound_agents": [{"agent_id": agent["id"]}]},
        headers=org.bearer,
    )
    cleared = await call(
        client.incoming_phone_numbers(created.sid).update, voice_url="", voice_fallback_url=""
    )
    assert cleared.voice_url is None and cleared.status_callback == f"{HOOK}/status"
    core = await v1_get(http, org, core["id"])
    assert core["call_handler"]["type"] == "agents" and core["inbound_agents"][0]["agent_id"] == agent["id"]

    assert await call(client.incoming_phone_numbers(created.sid).delete) is True
    with pytest.raises(TwilioRestException) as gone:
        await call(client.incoming_phone_numbers(created.sid).fetch)
    assert gone.value.status == 404 and gone.value.code == 20404
    assert (await v1_get(http, org, core["id"]))["status"] == "released"
    again = await http.delete(f"{base(org)}/IncomingPhoneNumbers/{created.sid}.json", auth=org.basic)
    assert again.status_code == 404 and again.json()["code"] == 20404


async def test_list_pages_filters_and_sub_lists(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    client = sdk(live_server, org)
    bought = []
    for _ in range(3):
        number = await call(client.incoming_phone_numbers.create, area_code=area_codes.take())
        bought.append(number)
    offered = await call(client.available_phone_numbers("US").toll_free.list, area_code="888", limit=1)
    toll_free = await call(
        client.incoming_phone_numbers.toll_free.create, phone_number=offered[0].phone_number
    )
    await call(client.incoming_phone_numbers(bought[1].sid).update, friendly_name="Sales line")
    sids = {n.sid for n in bought}

    listed = await call(client.incoming_phone_numbers.list, page_size=2)
    assert [n.sid for n in listed] == [toll_free.sid, *(b.sid for b in reversed(bought))]
    local = await call(client.incoming_phone_numbers.local.list, page_size=2)
    assert {n.sid for n in local} == sids
    tf = await call(client.incoming_phone_numbers.toll_free.list)
    assert [n.sid for n in tf] == [toll_free.sid]
    by_name = await call(client.incoming_phone_numbers.list, friendly_name="sales")
    assert [n.sid for n in by_name] == [bought[1].sid]
    exact = await call(client.incoming_phone_numbers.list, phone_number=bought[2].phone_number)
    assert [n.sid for n in exact] == [bought[2].sid]
    wildcard = "+1" + bought[0].phone_number[2:5] + "*" * 7
    assert [n.sid for n in await call(client.incoming_phone_numbers.list, phone_number=wildcard)] == [
        bought[0].sid
    ]

    first = conforms(await http.get(f"{base(org)}/IncomingPhoneNumbers.json?PageSize=3", auth=org.basic))
    assert first["page"] == 0 and first["page_size"] == 3 and first["start"] == 0 and first["end"] == 2
    assert first["next_page_uri"].startswith(f"{base(org)}/IncomingPhoneNumbers.json?")
    second = conforms(await http.get(first["next_page_uri"], auth=org.basic))
    assert second["page"] == 1 and second["start"] == 3 and second["next_page_uri"] is None
    assert [n["sid"] for n in second["incoming_phone_numbers"]] == [bought[0].sid]
    assert second["previous_page_uri"] and second["first_page_uri"].endswith("Page=0")
    by_page = conforms(
        await http.get(f"{base(org)}/IncomingPhoneNumbers.json?PageSize=3&Page=1", auth=org.basic)
    )
    assert [n["sid"] for n in by_page["incoming_phone_numbers"]] == [bought[0].sid]
    sub = conforms(await http.get(f"{base(org)}/IncomingPhoneNumbers/Local.json?PageSize=2", auth=org.basic))
    assert len(sub["incoming_phone_numbers"]) == 2 and sub["next_page_uri"]
    assert (await v1_count(http, org)) == 4


async def test_errors_in_twilios_shape_and_codes(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    org: OrgCreds,
    other_org: OrgCreds,
    area_codes: AreaCodes,
) -> None:
    mine, theirs = sdk(live_server, org), sdk(live_server, other_org)
    area = area_codes.take()
    number = await call(mine.incoming_phone_numbers.create, area_code=area)
    before = await v1_count(http, org)

    async def fails(fn: Any, status: int, code: int, **kwargs: Any) -> TwilioRestException:
        with pytest.raises(TwilioRestException) as err:
            await call(fn, **kwargs)
        assert (err.value.status, err.value.code) == (status, code), err.value.msg
        return err.value

    await fails(mine.incoming_phone_numbers.create, 400, 21421, phone_number="+1555")
    await fails(mine.incoming_phone_numbers.create, 400, 21421, friendly_name="no number")
    await fails(mine.incoming_phone_numbers.create, 400, 21452, area_code="800")
    await fails(theirs.incoming_phone_numbers.create, 400, 21422, phone_number=number.phone_number)
    await fails(mine.incoming_phone_numbers.create, 400, 21451, area_code="12")
    await fails(mine.incoming_phone_numbers(number.sid).update, 400, 21405, voice_fallback_url=f"{HOOK}/fb")
    bad_url = await fails(mine.incoming_phone_numbers(number.sid).update, 400, 21205, voice_url="ftp://x")
    assert "VoiceUrl" in bad_url.msg
    await fails(mine.incoming_phone_numbers(number.sid).update, 400, 20001, voice_method="PUT")
    await fails(mine.incoming_phone_numbers("PN" + "0" * 32).fetch, 404, 20404)
    await fails(mine.incoming_phone_numbers("not-a-sid").fetch, 404, 20404)
    await fails(sdk(live_server, org, secret="wrong").incoming_phone_numbers(number.sid).fetch, 401, 20003)
    # The AccountSid in the path must be the key's own id: another org's key id is refused.
    await fails(
        sdk(live_server, org, account=other_org.key_id).incoming_phone_numbers(number.sid).fetch, 401, 20003
    )

    # Another org's sid answers exactly like a missing one, on every route.
    for fn, kwargs in (
        (theirs.incoming_phone_numbers(number.sid).fetch, {}),
        (theirs.incoming_phone_numbers(number.sid).update, {"friendly_name": "Stolen"}),
        (theirs.incoming_phone_numbers(number.sid).delete, {}),
    ):
        await fails(fn, 404, 20404, **kwargs)
    assert await call(theirs.incoming_phone_numbers.list) == []
    assert await call(theirs.incoming_phone_numbers.local.list) == []
    assert (await v1_get(http, org, number.phone_number))["name"] is None
    assert await v1_count(http, org) == before

    raw = await http.get(f"{base(other_org)}/IncomingPhoneNumbers/{number.sid}.json", auth=other_org.basic)
    path = f"{base(other_org)}/IncomingPhoneNumbers/{number.sid}.json"
    assert raw.json() == {
        "code": 20404,
        "message": f"The requested resource {path} was not found",
        "more_info": "https://www.twilio.com/docs/errors/20404",
        "status": 404,
    }
    wrong_account = await http.get(f"{base(other_org)}/IncomingPhoneNumbers.json", auth=org.basic)
    assert wrong_account.status_code == 401 and wrong_account.json()["code"] == 20003
    json_body = await http.post(
        f"{base(org)}/IncomingPhoneNumbers.json", json={"AreaCode": area}, auth=org.basic
    )
    assert json_body.status_code == 400 and json_body.json()["code"] == 20001
    assert (await http.get(f"{base(org)}/AvailablePhoneNumbers/ZZ/Local.json", auth=org.basic)).json()[
        "code"
    ] == 20404
