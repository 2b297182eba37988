"""The audit log shows one change made through each dialect, and through /v1, with the right actor."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import AreaCodes, OrgCreds


def _v1(n: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return "PATCH", f"/v1/phone-numbers/{n['id']}", {"json": {"name": "Front desk"}}


def _helloannie(n: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return "PATCH", f"/helloannie/v1/phone-numbers/{n['id']}", {"json": {"language": "SPANISH"}}


def _retell(n: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return "PATCH", f"/retell/update-phone-number/{n['phone_number']}", {"json": {"nickname": "Front desk"}}


def _vocode(n: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (
        "POST",
        "/vocode/v1/numbers/update",
        {"params": {"phone_number": n["phone_number"]}, "json": {"label": "Front desk"}},
    )


# (via, one change through that surface). Dialects still being written join this list when they land.
SURFACES = [("v1", _v1), ("helloannie", _helloannie), ("retell", _retell), ("vocode", _vocode)]


@pytest.mark.parametrize(("via", "change"), SURFACES, ids=[s[0] for s in SURFACES])
async def test_a_change_through_each_surface_is_audited_with_its_actor(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes, via: str, change: Any
) -> None:
    bought = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    assert bought.status_code == 201, bought.text
    number = bought.json()
    method, path, kwargs = change(number)
    response = await client.request(
        method, path, headers={**org.bearer, "X-Request-Id": f"req-{via}"}, **kwargs
    )
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
    assert entry["before"] is not None and entry["after"] is not None and entry["before"] != entry["after"]
