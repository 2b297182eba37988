"""Freya Voice over raw HTTP (Bearer) against the live server."""

from __future__ import annotations

import httpx

from tests.dialects.helpers import make_agent, v1_count, v1_get
from tests.support import OrgCreds

BASE = "/freya/api/v2"
PHONE_NUMBER_KEYS = {
    "id",
    "number",
    "workspaceId",
    "userId",
    "createdAt",
    "updatedAt",
    "friendlyName",
    "config",
    "inboundAgentName",
    "outboundAgentName",
    "inboundAgentEntityType",
    "outboundAgentEntityType",
    "inboundAgentWorkflowId",
    "outboundAgentWorkflowId",
}
CONFIG_KEYS = {
    "capabilities",
    "voiceConfig",
    "messagingConfig",
    "emergencyCalls",
    "configType",
    "inboundAgentId",
    "outboundAgentId",
    "inboundWorkflowId",
    "outboundWorkflowId",
    "originationUri",
    "sipInbound",
    "sipOutbound",
}
SIP_OUTBOUND_KEYS = {
    "enabled",
    "endpoint",
    "port",
    "username",
    "password",
    "fromDomain",
    "transportProtocol",
    "secureMedia",
    "headers",
}


def _result(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True and set(body) == {"success", "data"}
    assert set(body["data"]) == {"message", "result"} and body["data"]["message"]
    return body["data"]["result"]


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["message"] and body["error"]
    return body


async def test_seed_register(http: httpx.AsyncClient, org: OrgCreds) -> None:
    inbound = await make_agent(http, org, "Inbound")
    outbound = await make_agent(http, org, "Outbound")
    # The seed's curl example (001_25748669fed067a7.txt) with real ids.
    seed = {
        "number": "+14155551234",
        "friendlyName": "Main Support Line",
        "workspaceId": org.org_id,
        "userId": org.org_id,
        "config": {"inboundAgentId": inbound["id"], "outboundAgentId": outbound["id"]},
    }
    result = _result(await http.post(f"{BASE}/phone-numbers", json=seed, headers=org.bearer), 201)
    phone = result["phoneNumber"]
    assert set(phone) == PHONE_NUMBER_KEYS and set(phone["config"]) == CONFIG_KEYS
    assert set(phone["config"]["sipOutbound"]) == SIP_OUTBOUND_KEYS
    assert phone["number"] == "+14155551234" and phone["friendlyName"] == "Main Support Line"
    assert phone["workspaceId"] == org.org_id and phone["userId"] == org.org_id
    assert phone["config"]["inboundAgentId"] == inbound["id"]
    assert phone["config"]["outboundAgentId"] == outbound["id"]
    assert phone["inboundAgentName"] == "Inbound" and phone["outboundAgentName"] == "Outbound"
    assert phone["inboundAgentEntityType"] == "agent" and phone["config"]["configType"] == "agents"
    assert phone["config"]["capabilities"] == {"voice": "enabled", "sms": False}
    core = await v1_get(http, org, phone["id"])
    assert core["origin"] == "imported" and core["name"] == "Main Support Line"
    assert core["outbound_agents"][0]["agent_id"] == outbound["id"]


async def test_sip_config_bulk_update_list_delete(http: httpx.AsyncClient, org: OrgCreds) -> None:
    agent = await make_agent(http, org, "Agent")
    body = {
        "number": "+14157774460",
        "friendlyName": "Trunk line",
        "workspaceId": org.org_id,
        "userId": org.key_id,
        "config": {
            "configType": "agents",
            "inboundAgentId": agent["id"],
            "capabilities": {"voice": "enabled", "sms": True},
            "emergencyCalls": False,
            "voiceConfig": "standard",
            "originationUri": "sip.us1.freyavoice.ai:5080",
            "sipInbound": {"enabled": True},
            "sipOutbound": {
                "enabled": True,
                "endpoint": "trunk.example.com",
                "port": 5061,
                "username": "u",
                "password": "sip-secret",
                "fromDomain": "example.com",
                "transportProtocol": "TLS",
                "secureMedia": True,
                "headers": [{"key": "X-Tenant", "value": "acme"}],
            },
        },
    }
    response = await http.post(f"{BASE}/phone-numbers", json=body, headers=org.bearer)
    phone = _result(response, 201)["phoneNumber"]
    assert "sip-secret" not in response.text
    config = phone["config"]
    assert phone["userId"] == org.key_id
    assert config["capabilities"] == {"voice": "enabled", "sms": True} and config["emergencyCalls"] is False
    assert config["voiceConfig"] == "standard" and config["originationUri"] == "sip.us1.freyavoice.ai:5080"
    assert config["sipInbound"] == {"enabled": True}
    assert config["sipOutbound"] == {
        **body["config"]["sipOutbound"],  # type: ignore[dict-item]
        "password": None,
    }
    core = await v1_get(http, org, phone["id"])
    assert core["sip_outbound"]["transport"] == "tls" and core["sip_outbound"]["password_set"] is True
    assert core["capabilities"]["sms"] is True

    second = _result(
        await http.post(
            f"{BASE}/phone-numbers",
            json={"number": "+14157774461", "workspaceId": org.org_id, "userId": org.org_id},
            headers=org.bearer,
        ),
        201,
    )["phoneNumber"]
    updated = _result(
        await http.put(
            f"{BASE}/phone-numbers",
            json={
                "workspaceId": org.org_id,
                "phoneNumbers": [
                    {
                        "id": phone["id"],
                        "config": {"sipOutbound": {"port": 5062, "transportProtocol": "udp"}},
                    },
                    {
                        "id": second["id"],
                        "friendlyName": "Second",
                        "config": {"outboundAgentId": agent["id"]},
                    },
                ],
            },
            headers=org.bearer,
        )
    )["updated"]
    assert [u["id"] for u in updated] == [phone["id"], second["id"]]
    sip = updated[0]["config"]["sipOutbound"]
    assert (
        sip["port"] == 5062 and sip["transportProtocol"] == "UDP" and sip["endpoint"] == "trunk.example.com"
    )
    assert (
        updated[0]["config"]["inboundAgentId"] == agent["id"] and updated[0]["friendlyName"] == "Trunk line"
    )
    assert updated[1]["friendlyName"] == "Second" and updated[1]["config"]["outboundAgentId"] == agent["id"]
    assert (await v1_get(http, org, phone["id"]))["sip_outbound"]["password_set"] is True

    page = _result(await http.get(f"{BASE}/phone-numbers", params={"limit": 1}, headers=org.bearer))
    assert [n["id"] for n in page["phoneNumbers"]] == [second["id"]]
    assert page["pagination"] == {"total": 2, "limit": 1, "offset": 0, "hasNext": True, "hasPrevious": False}
    page = _result(
        await http.get(
            f"{BASE}/phone-numbers",
            params={"limit": 1, "offset": 1, "workspaceId": org.org_id},
            headers=org.bearer,
        )
    )
    assert [n["id"] for n in page["phoneNumbers"]] == [phone["id"]]
    assert page["pagination"]["hasNext"] is False and page["pagination"]["hasPrevious"] is True

    got = _result(await http.get(f"{BASE}/phone-numbers/{phone['id']}", headers=org.bearer))["phoneNumber"]
    assert got["id"] == phone["id"] and got["config"]["sipOutbound"]["port"] == 5062
    deleted = _result(await http.delete(f"{BASE}/phone-numbers/{phone['id']}", headers=org.bearer))
    assert deleted == {"deleted": [phone["id"]]}
    _error(await http.get(f"{BASE}/phone-numbers/{phone['id']}", headers=org.bearer), 404)


async def test_errors_and_tenancy(http: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds) -> None:
    foreign_agent = await make_agent(http, other_org, "Theirs")
    mine = _result(
        await http.post(
            f"{BASE}/phone-numbers",
            json={
                "number": "+14157774465",
                "friendlyName": "Mine",
                "workspaceId": org.org_id,
                "userId": org.org_id,
            },
            headers=org.bearer,
        ),
        201,
    )["phoneNumber"]
    before = await v1_count(http, org)
    body = {"number": "+14157774466", "workspaceId": other_org.org_id, "userId": org.org_id}
    _error(await http.post(f"{BASE}/phone-numbers", json=body, headers=org.bearer), 403)
    body = {"number": "+14157774466", "workspaceId": org.org_id, "userId": other_org.key_id}
    _error(await http.post(f"{BASE}/phone-numbers", json=body, headers=org.bearer), 403)
    body = {
        "number": "+14157774466",
        "workspaceId": org.org_id,
        "userId": org.org_id,
        "config": {"inboundAgentId": foreign_agent["id"]},
    }
    _error(await http.post(f"{BASE}/phone-numbers", json=body, headers=org.bearer), 404)
    body = {"number": "+14157774465", "workspaceId": org.org_id, "userId": org.org_id}
    _error(await http.post(f"{BASE}/phone-numbers", json=body, headers=org.bearer), 409)
    _error(await http.post(f"{BASE}/phone-numbers", json={"number": "+1"}, headers=org.bearer), 400)
    _error(
        await http.get(f"{BASE}/phone-numbers", params={"workspaceId": other_org.org_id}, headers=org.bearer),
        403,
    )
    _error(await http.get(f"{BASE}/phone-numbers"), 401)
    assert await v1_count(http, org) == before

    # Another org sees nothing of mine, and its bulk update of my number changes nothing.
    _error(await http.get(f"{BASE}/phone-numbers/{mine['id']}", headers=other_org.bearer), 404)
    _error(await http.delete(f"{BASE}/phone-numbers/{mine['id']}", headers=other_org.bearer), 404)
    theirs = _result(await http.get(f"{BASE}/phone-numbers", headers=other_org.bearer))
    assert theirs["phoneNumbers"] == [] and theirs["pagination"]["total"] == 0
    update = {"workspaceId": other_org.org_id, "phoneNumbers": [{"id": mine["id"], "friendlyName": "Stolen"}]}
    _error(await http.put(f"{BASE}/phone-numbers", json=update, headers=other_org.bearer), 404)
    update = {"workspaceId": org.org_id, "phoneNumbers": [{"id": mine["id"], "friendlyName": "Stolen"}]}
    _error(await http.put(f"{BASE}/phone-numbers", json=update, headers=other_org.bearer), 403)
    # All or nothing: one bad item leaves the good one unchanged.
    update = {
        "workspaceId": org.org_id,
        "phoneNumbers": [
            {"id": mine["id"], "friendlyName": "Changed"},
            {"id": mine["id"], "config": {"outboundAgentId": foreign_agent["id"]}},
        ],
    }
    _error(await http.put(f"{BASE}/phone-numbers", json=update, headers=org.bearer), 404)
    assert (await v1_get(http, org, mine["id"]))["name"] == "Mine"
    renumber = {"workspaceId": org.org_id, "phoneNumbers": [{"id": mine["id"], "number": "+14157774467"}]}
    _error(await http.put(f"{BASE}/phone-numbers", json=renumber, headers=org.bearer), 400)
