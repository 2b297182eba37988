"""Retell through its own SDK (retell-sdk) against the live server; responses validated against
Retell's OpenAPI (PhoneNumberResponse)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import httpx
import pytest
import retell
import yaml
from openapi_schema_validator import OAS30Validator
from retell import Retell

from tests.dialects.helpers import make_agent, v1_count, v1_get
from tests.support import LiveServer, OrgCreds, reference_file

SPEC = reference_file("retell-openapi.yaml")


@functools.cache
def _validator(schema_name: str) -> OAS30Validator:
    spec = yaml.safe_load(SPEC.read_text())
    return OAS30Validator({"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]})


def check_shape(body: Any) -> None:
    """Every PhoneNumberResponse the server sends matches Retell's published schema."""
    if not SPEC.exists():
        pytest.skip("retell-openapi.yaml is not available")
    items = body if isinstance(body, list) else [body]
    for item in items:
        _validator("PhoneNumberResponse").validate(item)


def sdk(live_server: LiveServer, org: OrgCreds) -> Retell:
    return Retell(api_key=org.token, base_url=live_server.url + "/retell", max_retries=0)


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_create_retrieve_update_delete_through_the_sdk(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    a = await make_agent(http, org, "A")
    b = await make_agent(http, org, "B")
    area = int(area_codes.take())
    raw = await call(
        client.phone_number.with_raw_response.create,
        area_code=area,
        nickname="Main",
        inbound_agents=[{"agent_id": a["id"], "weight": 1}],
        inbound_webhook_url="https://hooks.example.com/inbound",
        allowed_outbound_country_list=["US", "CA"],
    )
    assert raw.status_code == 201
    check_shape(raw.http_response.json())
    created = raw.parse()
    assert created.phone_number.startswith(f"+1{area}5550")
    assert created.phone_number_type == "retell-twilio"
    assert created.area_code == area and created.nickname == "Main"
    assert created.phone_number_pretty == f"+1 ({area}) 555-{created.phone_number[8:]}"
    assert [(x.agent_id, x.weight) for x in created.inbound_agents or []] == [(a["id"], 1.0)]
    assert created.inbound_agent_id == a["id"] and created.inbound_agent_version == 1
    assert created.outbound_agents == [] and created.outbound_agent_id is None
    assert created.inbound_webhook_url == "https://hooks.example.com/inbound"
    assert created.allowed_outbound_country_list == ["US", "CA"]
    assert created.allowed_inbound_country_list is None
    assert created.sip_outbound_trunk_config is None and created.fallback_number is None
    assert created.last_modification_timestamp > 1_600_000_000_000

    got = await call(client.phone_number.retrieve, created.phone_number)
    assert got == created

    updated = await call(
        client.phone_number.update,
        created.phone_number,
        nickname="Renamed",
        inbound_agents=[
            {"agent_id": a["id"], "weight": 0.5, "agent_version": 1},
            {"agent_id": b["id"], "weight": 0.5, "agent_version": "latest"},
        ],
        outbound_agents=[{"agent_id": b["id"], "weight": 1}],
        fallback_number="+14155550199",
        inbound_webhook_url=None,
    )
    assert updated.nickname == "Renamed" and updated.inbound_webhook_url is None
    assert [(x.agent_id, x.weight, x.agent_version) for x in updated.inbound_agents or []] == [
        (a["id"], 0.5, 1),
        (b["id"], 0.5, None),
    ]
    assert updated.outbound_agent_id == b["id"] and updated.fallback_number == "+14155550199"
    assert updated.last_modification_timestamp >= created.last_modification_timestamp
    core = await v1_get(http, org, created.phone_number)
    assert core["name"] == "Renamed" and core["fallback"] == {"number": "+14155550199"}
    assert [x["agent_id"] for x in core["inbound_agents"]] == [a["id"], b["id"]]

    assert await call(client.phone_number.delete, created.phone_number) is None
    with pytest.raises(retell.UnprocessableEntityError) as gone:
        await call(client.phone_number.retrieve, created.phone_number)
    assert gone.value.body["status"] == "error"  # type: ignore[index]
    with pytest.raises(retell.UnprocessableEntityError):
        await call(client.phone_number.delete, created.phone_number)


async def test_import_and_sip_trunk_settings(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds
) -> None:
    client = sdk(live_server, org)
    agent = await make_agent(http, org, "Imported agent")
    number = "+14157774412"
    raw = await call(
        client.phone_number.with_raw_response.import_,
        phone_number=number,
        termination_uri="acme.pstn.twilio.com",
        sip_trunk_auth_username="user",
        sip_trunk_auth_password="secret-pw",
        transport="UDP",
        nickname="BYO",
        inbound_agents=[{"agent_id": agent["id"], "weight": 1}],
    )
    assert raw.status_code == 201
    body = raw.http_response.json()
    check_shape(body)
    assert "secret-pw" not in raw.http_response.text
    imported = raw.parse()
    assert imported.phone_number == number and imported.phone_number_type == "custom"
    assert imported.sip_outbound_trunk_config is not None
    trunk = imported.sip_outbound_trunk_config
    assert (trunk.termination_uri, trunk.auth_username, trunk.transport) == (
        "acme.pstn.twilio.com",
        "user",
        "UDP",
    )
    core = await v1_get(http, org, number)
    assert core["origin"] == "imported" and core["sip_outbound"]["password_set"] is True

    updated = await call(
        client.phone_number.update,
        number,
        termination_uri="acme2.pstn.twilio.com",
        auth_username="user2",
        transport="TLS",
        codecs=["PCMU"],
    )
    trunk = updated.sip_outbound_trunk_config
    assert trunk is not None and trunk.termination_uri == "acme2.pstn.twilio.com"
    assert (trunk.auth_username, trunk.transport, trunk.codecs) == ("user2", "TLS", ["PCMU"])
    assert (await v1_get(http, org, number))["sip_outbound"]["password_set"] is True

    with pytest.raises(retell.BadRequestError):  # the number is already held
        await call(client.phone_number.import_, phone_number=number, termination_uri="x.pstn.twilio.com")
    await call(client.phone_number.delete, number)


async def test_list_pages_and_legacy_list(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    client = sdk(live_server, org)
    made = []
    for _ in range(3):
        made.append((await call(client.phone_number.create, area_code=int(area_codes.take()))).phone_number)
    first = await call(client.phone_number.list, limit=2)
    assert first.has_more is True and first.pagination_key
    second = await call(client.phone_number.list, limit=2, pagination_key=first.pagination_key)
    assert second.has_more is False and second.pagination_key is None
    seen = [n.phone_number for n in first.items + second.items]
    assert seen == list(reversed(made))
    ascending = await call(client.phone_number.list, limit=10, sort_order="ascending")
    assert [n.phone_number for n in ascending.items] == made

    raw = await http.get("/retell/v2/list-phone-numbers", params={"limit": 10}, headers=org.bearer)
    check_shape(raw.json()["items"])
    legacy = await http.get("/retell/list-phone-numbers", headers=org.bearer)
    assert legacy.status_code == 200 and isinstance(legacy.json(), list)
    check_shape(legacy.json())
    assert [n["phone_number"] for n in legacy.json()] == list(reversed(made))


async def test_errors_and_tenancy(
    live_server: LiveServer, http: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, area_codes
) -> None:
    mine = sdk(live_server, org)
    theirs = sdk(live_server, other_org)
    agent = await make_agent(http, org, "Mine")
    foreign_agent = await make_agent(http, other_org, "Theirs")
    created = await call(mine.phone_number.create, area_code=int(area_codes.take()), nickname="Mine")
    e164 = created.phone_number

    with pytest.raises(retell.UnprocessableEntityError):
        await call(theirs.phone_number.retrieve, e164)
    with pytest.raises(retell.UnprocessableEntityError):
        await call(theirs.phone_number.update, e164, nickname="Stolen")
    with pytest.raises(retell.UnprocessableEntityError):
        await call(theirs.phone_number.delete, e164)
    assert e164 not in [n.phone_number for n in (await call(theirs.phone_number.list)).items]
    legacy = await http.get("/retell/list-phone-numbers", headers=other_org.bearer)
    assert e164 not in [n["phone_number"] for n in legacy.json()]
    with pytest.raises(retell.BadRequestError):
        await call(theirs.phone_number.import_, phone_number=e164, termination_uri="x.pstn.twilio.com")
    assert (await v1_get(http, org, e164))["name"] == "Mine"

    before = await v1_count(http, org)
    with pytest.raises(retell.BadRequestError):  # Retell documents 400 (not 422) for create
        await call(
            mine.phone_number.create,
            area_code=int(area_codes.take()),
            inbound_agents=[{"agent_id": foreign_agent["id"], "weight": 1}],
        )
    with pytest.raises(retell.UnprocessableEntityError):
        await call(
            mine.phone_number.update, e164, inbound_agents=[{"agent_id": foreign_agent["id"], "weight": 1}]
        )
    assert await v1_count(http, org) == before
    with pytest.raises(retell.BadRequestError) as bad:
        await call(
            mine.phone_number.update,
            e164,
            inbound_agents=[{"agent_id": agent["id"], "weight": 0.5}],
        )
    assert bad.value.body["status"] == "error" and "weights" in bad.value.body["message"]  # type: ignore[index]
    with pytest.raises(retell.BadRequestError):
        await call(
            mine.phone_number.update,
            e164,
            inbound_agents=[{"agent_id": agent["id"], "weight": 1, "agent_version": "prod"}],
        )
    unauthorized = Retell(api_key="key_nope.nope", base_url=live_server.url + "/retell", max_retries=0)
    with pytest.raises(retell.AuthenticationError) as denied:
        await call(unauthorized.phone_number.list)
    assert denied.value.body["status"] == "error"  # type: ignore[index]
    empty = await http.delete(f"/retell/delete-phone-number/{e164}", headers=org.bearer)
    assert empty.status_code == 204 and empty.content == b""
