"""Hostile input answers a clear 4xx naming the field, in the API's own shape, on both databases.

NUL characters and lone surrogates (text PostgreSQL cannot store), huge integers, invalid JSON
and nesting, and the validation gaps of issue 10 (items 8, 9 and 10).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.dialects.helpers import make_agent, v1_buy
from tests.support import AreaCodes, OrgCreds

NUL = "a\u0000b"


def fields_of(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


async def test_nul_in_v1_bodies_is_refused_naming_the_field(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    number = await v1_buy(client, org, area_codes.take(), name="kept")
    cases: list[tuple[str, str, Any, str]] = [
        ("PATCH", f"/v1/phone-numbers/{number['id']}", {"name": NUL}, "name"),
        ("PATCH", f"/v1/phone-numbers/{number['id']}", {"metadata": {"k": [1, NUL]}}, "metadata.k[1]"),
        ("PATCH", f"/v1/phone-numbers/{number['id']}", {"metadata": {NUL: 1}}, "metadata"),
        ("PATCH", f"/v1/phone-numbers/{number['id']}", {"voice": {"voice_id": NUL}}, "voice.voice_id"),
        ("POST", "/v1/agents", {"name": NUL}, "name"),
        (
            "POST",
            "/v1/webhook-endpoints",
            {"url": "https://example.com/h", "description": NUL},
            "description",
        ),
        (
            "POST",
            "/v1/phone-numbers/import",
            {"numbers": [{"phone_number": "+12025550100"}], "defaults": {"name": NUL}},
            "defaults.name",
        ),
    ]
    for method, path, body, field in cases:
        response = await client.request(method, path, json=body, headers=org.bearer)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert fields_of(response) == [field], response.text
        assert "NUL" in response.json()["errors"][0]["message"]
    # A lone surrogate (JSON's \ud800 escape) cannot be stored either: no UTF-8 encoder writes it.
    response = await client.patch(
        f"/v1/phone-numbers/{number['id']}",
        content=b'{"name": "a\\ud800b"}',
        headers={**org.bearer, "content-type": "application/json"},
    )
    assert response.status_code == 422 and fields_of(response) == ["name"], response.text
    # A surrogate pair is a character (an emoji): stored and read back.
    response = await client.patch(
        f"/v1/phone-numbers/{number['id']}",
        content=b'{"name": "call \\ud83d\\ude00"}',
        headers={**org.bearer, "content-type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["name"] == "call \U0001f600", response.text
    # Nothing half-written.
    got = await client.get(f"/v1/phone-numbers/{number['id']}", headers=org.bearer)
    assert got.json()["metadata"] == {}


async def test_nul_in_query_and_path_parameters(client: httpx.AsyncClient, org: OrgCreds) -> None:
    for path, param in [
        ("/v1/phone-numbers", "q"),
        ("/v1/phone-numbers", "carrier"),
        ("/v1/phone-numbers", "name"),
        ("/v1/audit-events", "action"),
        ("/v1/agents", "cursor"),
    ]:
        response = await client.get(f"{path}?{param}=a%00b", headers=org.bearer)
        assert response.status_code == 422, (path, response.text)
        assert fields_of(response) == [param]
    response = await client.get("/v1/phone-numbers/pn_a%00b", headers=org.bearer)
    assert response.status_code == 404, response.text


async def test_an_import_row_with_nul_fails_alone(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    rows = [
        {"phone_number": f"+1{area}5550181", "name": "fine"},
        {"phone_number": f"+1{area}5550182", "name": NUL},
        {"phone_number": f"+1{area}5550183", "metadata": {"a\u0000": 1}},
        {"phone_number": f"+1{area}5550184"},
    ]
    response = await client.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=org.bearer)
    assert response.status_code in (200, 201), response.text
    report = response.json()
    assert (report["created"], report["failed"]) == (2, 2)
    statuses = [(r["status"], (r.get("error") or {}).get("field")) for r in report["results"]]
    assert statuses == [("created", None), ("failed", "name"), ("failed", "metadata"), ("created", None)]


# Each dialect answers in its own shape, naming the field (query or body), before any route runs.
DIALECT_CASES = [
    ("PATCH", "/retell/update-phone-number/+12025550100", {"nickname": NUL}, "nickname"),
    ("POST", "/retell/create-phone-number", {"nickname": NUL}, "nickname"),
    ("GET", "/retell/v2/list-phone-numbers?pagination_key=a%00b", None, "pagination_key"),
    ("PATCH", "/zudu/api/phone-numbers/+12025550100", {"number_provider": NUL}, "number_provider"),
    ("GET", "/zudu/api/phone-numbers?search=a%00b", None, "search"),
    ("POST", "/vocode/v1/numbers/update?phone_number=%2B12025550100", {"label": NUL}, "label"),
    ("PATCH", "/vapi/phone-number/x", {"name": NUL}, "name"),
    ("PATCH", "/helloannie/v1/phone-numbers/x", {"friendly_name": NUL}, "friendly_name"),
    ("PUT", "/freya/api/v2/phone-numbers", {"phoneNumbers": [{"name": NUL}]}, "phoneNumbers[0].name"),
    ("PUT", "/api/relay/rest/phone_numbers/x", {"name": NUL}, "name"),
    ("GET", "/api/relay/rest/phone_numbers?filter_name=a%00b", None, "filter_name"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), DIALECT_CASES)
async def test_nul_through_each_dialect(
    client: httpx.AsyncClient, org: OrgCreds, method: str, path: str, body: Any, field: str
) -> None:
    response = await client.request(method, path, json=body, headers=org.bearer)
    assert response.status_code in (400, 422), response.text
    assert "problem+json" not in response.headers["content-type"]  # the dialect's shape, not /v1's
    assert field in response.text and "NUL" in response.text, response.text


async def test_nul_in_a_twilio_form(client: httpx.AsyncClient, org: OrgCreds) -> None:
    path = f"/2010-04-01/Accounts/{org.key_id}/IncomingPhoneNumbers/PNx.json"
    response = await client.post(path, data={"FriendlyName": NUL}, auth=org.basic)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400 and "FriendlyName" in body["message"], body


# ── 9. huge integers ────────────────────────────────────────────────────────────────────────

HUGE = "15553577635642440949856758600302592"


def _integer_inputs(app: Any) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) for every integer query parameter and top-level integer body
    field in the OpenAPI document: every one must be bounded."""
    spec = app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        for option in schema.get("anyOf", []):
            if "$ref" in option or option.get("type") == "object":
                return resolve(option)
        return schema

    def is_int(schema: dict[str, Any]) -> bool:
        options = schema.get("anyOf", [schema])
        return any(o.get("type") == "integer" for o in options)

    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param["in"] in ("query", "path") and is_int(param.get("schema", {})):
                    found.append((method.upper(), path, param["in"], param["name"]))
            body = op.get("requestBody", {}).get("content", {})
            for media in body.values():
                props = resolve(media.get("schema", {})).get("properties", {})
                for name, schema in props.items():
                    if is_int(resolve(schema) if "$ref" in schema else schema):
                        found.append((method.upper(), path, "body", name))
    return found


async def test_every_integer_input_is_bounded(app: Any, org: OrgCreds) -> None:
    inputs = _integer_inputs(app)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30)
    assert len(inputs) > 20  # the document lists them (limits, pages, versions, ports...)
    failures = []
    agent = await make_agent(client, org)  # a real one: a version is looked up under it
    for method, template, where, name in inputs:
        path = template.replace("{AccountSid}", org.key_id).replace("{agent_id}", agent["id"])
        for part in ("{phone_number_id}", "{phone_number}", "{Sid}", "{Kind}"):
            path = path.replace(part, "x")
        path = (
            path.replace("{CountryCode}", "US")
            .replace("{" + name + "}", "__INT__")
            .replace("{", "")
            .replace("}", "")
        )
        for value in (HUGE, "-" + HUGE):
            if where == "path":
                response = await client.request(method, path.replace("__INT__", value), headers=org.bearer)
            elif where == "query":
                response = await client.request(method, f"{path}?{name}={value}", headers=org.bearer)
            else:
                response = await client.request(
                    method,
                    path,
                    content=f'{{"{name}": {value}}}'.encode(),
                    headers={**org.bearer, "content-type": "application/json"},
                )
            if response.status_code >= 500:
                failures.append((method, template, where, name, response.status_code, response.text[:200]))
    await client.aclose()
    assert failures == []


async def test_huge_pages_named_in_the_dialects(client: httpx.AsyncClient, org: OrgCreds) -> None:
    response = await client.get(
        "/api/relay/rest/phone_numbers?page_number=1330426714229622016", headers=org.bearer
    )
    assert response.status_code == 400 and "page_number" in response.text, response.text
    response = await client.get(f"/zudu/api/phone-numbers?page={HUGE}", headers=org.bearer)
    assert response.status_code == 400 and "page" in response.text, response.text
    path = f"/2010-04-01/Accounts/{org.key_id}/IncomingPhoneNumbers.json?Page={HUGE}"
    response = await client.get(path, auth=org.basic)
    assert response.status_code == 400 and "Page" in response.json()["message"], response.text


async def test_a_huge_agent_version_is_refused(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    agent = await make_agent(client, org)
    number = await v1_buy(client, org, area_codes.take())
    binding = {"agent_id": agent["id"], "version": int(HUGE)}
    response = await client.patch(
        f"/v1/phone-numbers/{number['id']}", json={"inbound_agents": [binding]}, headers=org.bearer
    )
    assert response.status_code == 422 and fields_of(response) == ["inbound_agents[0].version"], response.text


# ── 10. validation gaps ─────────────────────────────────────────────────────────────────────


async def test_language_is_a_tag_carriers_accept(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    number = await v1_buy(client, org, area_codes.take())
    path = f"/v1/phone-numbers/{number['id']}"
    for bad in ("xx-NOPE", "xx", "en-NOPE", "fr-ZZ", "english", "en-US-x"):
        response = await client.patch(path, json={"language": bad}, headers=org.bearer)
        assert response.status_code == 422 and fields_of(response) == ["language"], (bad, response.text)
        response = await client.post("/v1/agents", json={"name": "a", "language": bad}, headers=org.bearer)
        assert response.status_code == 422 and fields_of(response) == ["language"], (bad, response.text)
    for good, stored in (
        ("en-US", "en-US"),
        ("en-us", "en-US"),
        ("es-419", "es-419"),
        ("zh-Hans-CN", "zh-Hans-CN"),
    ):
        response = await client.patch(path, json={"language": good}, headers=org.bearer)
        assert response.status_code == 200 and response.json()["language"] == stored, response.text


async def test_import_number_type_is_a_known_type(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    area = area_codes.take()
    rows = [
        {"phone_number": f"+1{area}5550191", "number_type": "satellite"},
        {"phone_number": f"+1{area}5550192", "number_type": "toll_free"},
    ]
    report = (
        await client.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=org.bearer)
    ).json()
    first, second = report["results"]
    assert first["status"] == "failed" and first["error"]["field"] == "number_type", first
    assert second["status"] == "created", second


async def test_an_unknown_status_filter_is_refused(client: httpx.AsyncClient, org: OrgCreds) -> None:
    response = await client.get("/v1/phone-numbers?status=bogus", headers=org.bearer)
    assert response.status_code == 422 and fields_of(response) == ["status"], response.text
    response = await client.get("/v1/phone-numbers?status=active,released", headers=org.bearer)
    assert response.status_code == 200


async def test_route_needs_to(client: httpx.AsyncClient, org: OrgCreds) -> None:
    for query in ("", "?to=", "?to=%20", "?from=%2B12025550100"):
        response = await client.get(f"/v1/route{query}", headers=org.bearer)
        assert response.status_code == 422 and fields_of(response) == ["to"], (query, response.text)


INVALID_BODIES = [
    (b'{"name": "a",}', "line 1 column 14 (char 13)"),
    (b'{"name":\n  "a" "b"}', "line 2 column 7 (char 15)"),
    (b"[" * 5000 + b"]" * 5000, "nested deeper than 200 levels at line 1 column 201 (char 200)"),
    (b'{"name": "\xff"}', "not UTF-8: byte 0xff at position 10"),
]


@pytest.mark.parametrize(("body", "where"), INVALID_BODIES)
async def test_invalid_json_is_one_clear_error_everywhere(
    client: httpx.AsyncClient, org: OrgCreds, body: bytes, where: str
) -> None:
    headers = {**org.bearer, "content-type": "application/json"}
    response = await client.post("/v1/agents", content=body, headers=headers)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "invalid_json" and where in problem["detail"], problem
    assert problem["errors"] == [{"field": "body", "message": problem["detail"], "code": "invalid_json"}]
    for path, status in (
        ("/retell/create-phone-number", 400),
        ("/zudu/api/phone-numbers/create", 400),
        ("/vocode/v1/numbers/buy", 422),  # Vocode's API (FastAPI) answers every bad body 422
        ("/vapi/phone-number", 400),
        ("/helloannie/v1/phone-numbers", 400),
        ("/freya/api/v2/phone-numbers", 400),
        ("/api/relay/rest/phone_numbers", 422),  # SignalWire answers invalid input 422
    ):
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert "problem+json" not in response.headers["content-type"]
        assert where in response.text, (path, response.text)
