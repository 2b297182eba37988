"""Zudu over raw HTTP (X-API-KEY / X-API-SECRET) against the live server."""

from __future__ import annotations

import urllib.parse

import httpx

from tests.dialects.helpers import make_agent, v1_count, v1_get
from tests.support import AreaCodes, OrgCreds

BASE = "/zudu/api/phone-numbers"
SEED_DATA_KEYS = {
    "phone_number",
    "organization_id",
    "phone_number_pretty",
    "area_code",
    "nickname",
    "phone_number_type",
    "inbound_agent_id",
    "outbound_agent_id",
    "inbound_agent_version",
    "outbound_agent_version",
    "inbound_webhook_url",
    "number_provider",
    "outbound_trunk_id",
    "created_at",
    "updated_at",
    "last_modification_timestamp",
}
GET_KEYS = SEED_DATA_KEYS | {"inbound_trunk_id", "dispatch_rule_id"}


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"message", "status", "error", "data"}
    assert body["status"] == "success" and body["error"] is None and body["message"]
    return body["data"]


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["data"] is None and body["message"] and body["error"]
    return body


async def test_seed_create_and_every_endpoint(http: httpx.AsyncClient, org: OrgCreds) -> None:
    inbound = await make_agent(http, org, "Inbound")
    outbound = await make_agent(http, org, "Outbound")
    # The seed's curl example (003_97efaffae1bd7035.txt) with real agent ids.
    seed = {
        "phone_number": "+14157774444",
        "area_code": 415,
        "nickname": "Customer Service Line",
        "inbound_agent_id": inbound["id"],
        "outbound_agent_id": outbound["id"],
        "inbound_agent_version": 1,
        "outbound_agent_version": 1,
        "inbound_webhook_url": "https://example.com/webhook",
        "number_provider": "twilio",
        "outbound_trunk_id": "ST_4Xo2mZgQsfyQ",
        "phone_number_type": "zudu-twilio",
    }
    data = _ok(await http.post(f"{BASE}/create", json=seed, headers=org.key_headers))
    assert SEED_DATA_KEYS <= set(data)
    assert {k: data[k] for k in seed} == seed
    assert data["organization_id"] == org.org_id and data["phone_number_pretty"] == "+1 (415) 777-4444"
    assert data["created_at"].endswith("Z") and data["last_modification_timestamp"] > 1_600_000_000_000
    core = await v1_get(http, org, "+14157774444")
    assert core["origin"] == "imported" and core["sip_outbound"]["trunk_id"] == "ST_4Xo2mZgQsfyQ"
    assert core["inbound_agents"] == [{"agent_id": inbound["id"], "version": 1, "weight": 1.0}]

    for ref in ("+14157774444", urllib.parse.quote("+14157774444", safe="")):
        got = _ok(await http.get(f"{BASE}/{ref}", headers=org.key_headers))
        assert set(got) == GET_KEYS and got["phone_number"] == "+14157774444"

    patched = _ok(
        await http.patch(
            f"{BASE}/%2B14157774444",
            json={"label": "Renamed", "outbound_agent_id": None, "inbound_agent_version": 1},
            headers=org.key_headers,
        )
    )
    assert patched["nickname"] == "Renamed" and patched["outbound_agent_id"] is None
    assert patched["inbound_agent_id"] == inbound["id"] and patched["outbound_agent_version"] is None
    assert patched["inbound_webhook_url"] == "https://example.com/webhook"

    deleted = _ok(await http.delete(f"{BASE}/%2B14157774444", headers=org.key_headers))
    assert deleted == {
        "phone_number": "+14157774444",
        "organization_id": org.org_id,
        "cleanup_results": {"dispatch_rule": False, "inbound_trunk": False, "outbound_trunk": True},
    }
    _error(await http.get(f"{BASE}/%2B14157774444", headers=org.key_headers), 404)


async def test_list_filters_pages_and_available(
    http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    agent = await make_agent(http, org, "Lister")
    area_code = area_codes.take()
    numbers = [f"+1{area_code}555012{i}" for i in range(4)]
    for i, number in enumerate(numbers):
        body = {"phone_number": number, "nickname": f"Line {'ABCD'[i]}"}
        if i < 2:
            body["inbound_agent_id"] = agent["id"]
        _ok(await http.post(f"{BASE}/create", json=body, headers=org.key_headers))

    listed = _ok(await http.get(BASE, params={"limit": 3, "page": 0}, headers=org.key_headers))
    assert listed["organization_id"] == org.org_id and listed["returned_count"] == 3
    assert listed["pagination"] == {
        "page": 0,
        "limit": 3,
        "total_pages": 2,
        "total_count": 4,
        "has_next": True,
        "has_previous": False,
    }
    assert [n["phone_number"] for n in listed["phone_numbers"]] == numbers[::-1][:3]
    second = _ok(await http.get(BASE, params={"limit": 3, "page": 1}, headers=org.key_headers))
    assert [n["phone_number"] for n in second["phone_numbers"]] == [numbers[0]]
    assert second["pagination"]["has_next"] is False and second["pagination"]["has_previous"] is True

    by_agent = _ok(await http.get(BASE, params={"agent_id": agent["id"]}, headers=org.key_headers))
    assert sorted(n["phone_number"] for n in by_agent["phone_numbers"]) == numbers[:2]
    assert by_agent["applied_filters"] == {"agent_id": agent["id"]}
    posted = _ok(
        await http.post(
            f"{BASE}/list",
            json={
                "page": 0,
                "limit": 10,
                "sort_order": "ascending",
                "filter_criteria": {"nickname": "line c"},
            },
            headers=org.key_headers,
        )
    )
    assert [n["phone_number"] for n in posted["phone_numbers"]] == [numbers[2]]
    area = _ok(
        await http.post(
            f"{BASE}/list", json={"filter_criteria": {"area_code": int(area_code)}}, headers=org.key_headers
        )
    )
    assert area["pagination"]["total_count"] == 4

    available = _ok(await http.get(f"{BASE}/available", headers=org.key_headers))
    assert available["organization_id"] == org.org_id and available["available_count"] == 2
    assert sorted(n["phone_number"] for n in available["phone_numbers"]) == numbers[2:]


async def test_nickname_filter_is_the_name_only(
    http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    suite, front = f"+1{area}5550121", f"+1{area}5550199"
    for number, nickname in ((suite, "Suite 199"), (front, "Front")):
        _ok(
            await http.post(
                f"{BASE}/create", json={"phone_number": number, "nickname": nickname}, headers=org.key_headers
            )
        )
    # "199" is in one nickname and in the other number's digits: only the nickname counts.
    found = _ok(await http.get(BASE, params={"nickname": "199"}, headers=org.key_headers))
    assert [n["phone_number"] for n in found["phone_numbers"]] == [suite]
    assert found["pagination"]["total_count"] == 1 and found["applied_filters"] == {"nickname": "199"}
    posted = _ok(
        await http.post(
            f"{BASE}/list", json={"filter_criteria": {"nickname": "SUITE"}}, headers=org.key_headers
        )
    )
    assert [n["phone_number"] for n in posted["phone_numbers"]] == [suite]
    digits_only = _ok(await http.get(BASE, params={"nickname": front[-4:]}, headers=org.key_headers))
    assert digits_only["phone_numbers"] == []


async def test_list_sorts_by_each_documented_key(
    http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    low, high = sorted([area_codes.take(), area_codes.take()])
    # Created in this order; numbers, nicknames and area codes each in a different order.
    plan = [(f"+1{high}5550110", "Bravo"), (f"+1{low}5550130", "Charlie"), (f"+1{low}5550120", "Alpha")]
    for number, nickname in plan:
        _ok(
            await http.post(
                f"{BASE}/create", json={"phone_number": number, "nickname": nickname}, headers=org.key_headers
            )
        )
    n0, n1, n2 = (p[0] for p in plan)
    # Touch n1, then n0: updated_at order is n2, n1, n0.
    for number in (n1, n0):
        _ok(
            await http.patch(
                f"{BASE}/{urllib.parse.quote(number)}",
                json={"inbound_webhook_url": "https://example.com/h"},
                headers=org.key_headers,
            )
        )

    async def order(sort_by: str | None, sort_order: str, *, post: bool = False) -> list[str]:
        query = {"sort_order": sort_order, **({"sort_by": sort_by} if sort_by else {})}
        if post:
            response = await http.post(f"{BASE}/list", json=query, headers=org.key_headers)
        else:
            response = await http.get(BASE, params=query, headers=org.key_headers)
        data = _ok(response)
        assert data["sort_by"] == (sort_by or "created_at") and data["sort_order"] == sort_order
        return [n["phone_number"] for n in data["phone_numbers"]]

    expected = {
        None: [n0, n1, n2],
        "created_at": [n0, n1, n2],
        "phone_number": [n2, n1, n0],
        "nickname": [n2, n0, n1],
        "area_code": [n1, n2, n0],  # ties in creation order
        "updated_at": [n2, n1, n0],
    }
    for key, ascending in expected.items():
        assert await order(key, "ascending") == ascending, key
        assert await order(key, "descending") == ascending[::-1], key
        assert await order(key, "ascending", post=True) == ascending, key
    paged = _ok(
        await http.get(
            BASE,
            params={"sort_by": "nickname", "sort_order": "ascending", "limit": 2, "page": 1},
            headers=org.key_headers,
        )
    )
    assert [n["nickname"] for n in paged["phone_numbers"]] == ["Charlie"]
    assert paged["pagination"]["has_next"] is False and paged["pagination"]["total_count"] == 3
    bad = _error(await http.get(BASE, params={"sort_by": "color"}, headers=org.key_headers), 400)
    assert "sort_by" in bad["message"]
    _error(await http.post(f"{BASE}/list", json={"sort_by": "color"}, headers=org.key_headers), 400)


async def test_import(http: httpx.AsyncClient, org: OrgCreds) -> None:
    agent = await make_agent(http, org, "Importer")
    body = {
        "phone_number": "+14157774430",
        "provider": "twilio",
        "account_sid": "AC123",
        "auth_token": "tok-secret",
        "nickname": "Imported",
        "inbound_agent_id": agent["id"],
    }
    response = await http.post(f"{BASE}/import", json=body, headers=org.key_headers)
    data = _ok(response)
    assert "tok-secret" not in response.text
    assert data["phone_number"]["phone_number_type"] == "CUSTOM"
    assert data["phone_number"]["inbound_agent_id"] == agent["id"]
    assert data["validation_result"]["phone_number"] == "+14157774430"
    assert data["validation_result"]["status"] == "active"
    assert data["import_details"]["organization_id"] == org.org_id
    assert data["import_details"]["provider"] == "twilio"
    assert isinstance(data["import_details"]["imported_at"], int)


async def test_errors_and_tenancy(http: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds) -> None:
    foreign_agent = await make_agent(http, other_org, "Theirs")
    _ok(await http.post(f"{BASE}/create", json={"phone_number": "+14157774435"}, headers=org.key_headers))
    before = await v1_count(http, org)

    _error(await http.get(BASE, headers={"X-API-KEY": org.key_id}), 401)
    _error(await http.get(BASE, headers={"X-API-KEY": org.key_id, "X-API-SECRET": "wrong"}), 401)
    dup = _error(
        await http.post(f"{BASE}/create", json={"phone_number": "+14157774435"}, headers=org.key_headers), 409
    )
    assert dup["error"] == "Conflict"
    _error(await http.post(f"{BASE}/create", json={"nickname": "no number"}, headers=org.key_headers), 400)
    _error(
        await http.post(
            f"{BASE}/create",
            json={"phone_number": "+14157774436", "inbound_agent_id": foreign_agent["id"]},
            headers=org.key_headers,
        ),
        404,
    )
    _error(
        await http.post(
            f"{BASE}/create",
            json={"phone_number": "+14157774436", "organization_id": other_org.org_id},
            headers=org.key_headers,
        ),
        403,
    )
    _error(await http.get(BASE, params={"organization_id": other_org.org_id}, headers=org.key_headers), 403)
    _error(
        await http.patch(
            f"{BASE}/%2B14157774435",
            json={"nickname": "x", "organization_id": other_org.org_id},
            headers=org.key_headers,
        ),
        403,
    )
    assert await v1_count(http, org) == before

    for method, body in (("GET", None), ("PATCH", {"nickname": "Stolen"}), ("DELETE", None)):
        _error(
            await http.request(method, f"{BASE}/%2B14157774435", json=body, headers=other_org.key_headers),
            404,
        )
    _error(
        await http.post(
            f"{BASE}/import", json={"phone_number": "+14157774435"}, headers=other_org.key_headers
        ),
        409,
    )
    theirs = _ok(await http.get(BASE, headers=other_org.key_headers))
    assert theirs["pagination"]["total_count"] == 0
    assert _ok(await http.get(f"{BASE}/available", headers=other_org.key_headers))["available_count"] == 0
    _error(
        await http.patch(
            f"{BASE}/%2B14157774435", json={"inbound_agent_id": foreign_agent["id"]}, headers=org.key_headers
        ),
        404,
    )
    assert (await v1_get(http, org, "+14157774435"))["inbound_agents"] == []
