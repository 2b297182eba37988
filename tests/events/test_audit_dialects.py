"""The audit log shows one change made through each dialect, and through /v1, with the right actor."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support import AreaCodes, OrgCreds

Change = tuple[str, str, dict[str, Any]]


# Each change uses its vendor's own key presentation (the key is the same one everywhere).
def _v1(n: dict[str, Any], org: OrgCreds) -> Change:
    return "PATCH", f"/v1/phone-numbers/{n['id']}", {"json": {"name": "Front desk"}, "headers": org.bearer}


def _helloannie(n: dict[str, Any], org: OrgCreds) -> Change:
    return (
        "PATCH",
        f"/helloannie/v1/phone-numbers/{n['id']}",
        {"json": {"language": "SPANISH"}, "headers": org.bearer},
    )


def _freya(n: dict[str, Any], org: OrgCreds) -> Change:
    body = {"workspaceId": org.org_id, "phoneNumbers": [{"id": n["id"], "friendlyName": "Front desk"}]}
    return "PUT", "/freya/api/v2/phone-numbers", {"json": body, "headers": org.bearer}


def _signalwire(n: dict[str, Any], org: OrgCreds) -> Change:
    return (
        "PUT",
        f"/api/relay/rest/phone_numbers/{n['id']}",
        {"json": {"name": "Front desk"}, "auth": org.basic},
    )


def _zudu(n: dict[str, Any], org: OrgCreds) -> Change:
    path = f"/zudu/api/phone-numbers/{quote(n['phone_number'], safe='')}"
    return "PATCH", path, {"json": {"nickname": "Front desk"}, "headers": org.key_headers}


def _retell(n: dict[str, Any], org: OrgCreds) -> Change:
    return (
        "PATCH",
        f"/retell/update-phone-number/{n['phone_number']}",
        {"json": {"nickname": "Front desk"}, "headers": org.bearer},
    )


def _vocode(n: dict[str, Any], org: OrgCreds) -> Change:
    return (
        "POST",
        "/vocode/v1/numbers/update",
        {
            "params": {"phone_number": n["phone_number"]},
            "json": {"label": "Front desk"},
            "headers": org.bearer,
        },
    )


# (via, one change through that surface): /v1 and all six dialects.
SURFACES = [
    ("v1", _v1),
    ("helloannie", _helloannie),
    ("freya", _freya),
    ("signalwire", _signalwire),
    ("zudu", _zudu),
    ("retell", _retell),
    ("vocode", _vocode),
]


@pytest.mark.parametrize(("via", "change"), SURFACES, ids=[s[0] for s in SURFACES])
async def test_a_change_through_each_surface_is_audited_with_its_actor(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes, via: str, change: Any
) -> None:
    bought = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    assert bought.status_code == 201, bought.text
    number = bought.json()
    method, path, kwargs = change(number, org)
    kwargs["headers"] = {**kwargs.get("headers", {}), "X-Request-Id": f"req-{via}"}
    response = await client.request(method, path, **kwargs)
    assert response.status_code < 300, response.text

    trail = (
        await client.get(
            "/v1/audit-events", params={"target_id": number["id"], "via": via}, headers=org.bearer
        )
    ).json()["data"]
    updates = [a for a in trail if a["action"] == "phone_number.updated"]
    assert len(updates) == 1, trail
    entry = updates[0]
    assert entry["actor_type"] == "api_key" and entry["actor_id"] == org.key_id
    assert entry["org_id"] == org.org_id and entry["target_type"] == "phone_number"
    assert entry["request_id"] == f"req-{via}"
    assert entry["via"] == via
    assert entry["before"] is not None and entry["after"] is not None and entry["before"] != entry["after"]


async def test_one_org_changed_through_every_surface_reads_back_in_one_audit_list(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    changed: dict[str, str] = {}
    for via, change in SURFACES:
        bought = await client.post(
            "/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer
        )
        assert bought.status_code == 201, bought.text
        number = bought.json()
        method, path, kwargs = change(number, org)
        response = await client.request(method, path, **kwargs)
        assert response.status_code < 300, (via, response.text)
        changed[number["id"]] = via

    listed = await client.get(
        "/v1/audit-events", params={"action": "phone_number.updated", "limit": 100}, headers=org.bearer
    )
    assert listed.status_code == 200, listed.text
    seen = {(e["target_id"], e["via"], e["actor_type"], e["actor_id"]) for e in listed.json()["data"]}
    assert seen == {(number_id, via, "api_key", org.key_id) for number_id, via in changed.items()}
    assert {via for via, _ in SURFACES} == {
        "v1",
        "helloannie",
        "freya",
        "signalwire",
        "zudu",
        "retell",
        "vocode",
    }
