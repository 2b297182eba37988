"""Size limits (issue 10, item 6): an oversized body is refused with 413 before it is parsed, on /v1 and
every dialect, in that API's own error shape; bulk import takes more; both are settings. Every
free-form field has a bound, and an error that names it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from numberplane.agents.models import Agent
from numberplane.app import create_app
from numberplane.kernel.db import Database
from numberplane.kernel.settings import Settings
from tests.support import AreaCodes, LiveServer, OrgCreds

MIB = 1024 * 1024
# A body that is not even JSON: a 413 (not a 422) shows it was never parsed.
GARBAGE = b"{" + b"x" * (2 * MIB)

# One write route per API surface, and the media type its errors come in.
SURFACES = [
    ("POST", "/v1/agents", "application/problem+json"),
    ("POST", "/helloannie/v1/phone-numbers", "application/json"),
    ("POST", "/freya/api/v2/phone-numbers", "application/json"),
    ("POST", "/api/relay/rest/phone_numbers", "application/json"),
    ("POST", "/zudu/api/phone-numbers/create", "application/json"),
    ("POST", "/retell/create-phone-number", "application/json"),
    ("POST", "/vocode/v1/numbers/buy", "application/json"),
]


def _says_the_limit(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    text = response.text
    assert "1,048,576 bytes" in text or "Too Large" in text, text  # SignalWire says only the phrase


@pytest.mark.parametrize(("method", "path", "media"), SURFACES)
async def test_an_oversized_body_is_413_before_parsing_in_the_apis_shape(
    client: httpx.AsyncClient, org: OrgCreds, db: Database, method: str, path: str, media: str
) -> None:
    async with db.session() as session:
        agents_before = await session.scalar(select(func.count()).select_from(Agent))
    response = await client.request(
        method, path, content=GARBAGE, headers={**org.bearer, "Content-Type": "application/json"}
    )
    _says_the_limit(response)
    assert response.headers["content-type"].startswith(media)
    body = response.json()
    if path.startswith("/v1/"):
        assert body["code"] == "payload_too_large" and body["status"] == 413
        assert body["detail"] == (
            f"the request body is {len(GARBAGE):,} bytes; this endpoint accepts at most 1,048,576 bytes"
        )
        assert body["request_id"] == response.headers["x-request-id"]
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Agent)) == agents_before


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


async def test_a_body_without_a_length_is_cut_off_at_the_limit(
    live_server: LiveServer, org: OrgCreds
) -> None:
    """Chunked: no Content-Length to judge by, so the body is counted as it arrives."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        response = await http.post(
            "/v1/agents",
            content=_chunks(3 * MIB),
            headers={**org.bearer, "Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413, response.text[:300]
        problem = response.json()
        assert problem["code"] == "payload_too_large" and "1,048,576 bytes" in problem["detail"]
        zudu = await http.post(
            "/zudu/api/phone-numbers/create",
            content=_chunks(2 * MIB),
            headers={**org.bearer, "Content-Type": "application/json"},
        )
        assert zudu.status_code == 413 and zudu.json()["status"] == "error"  # Zudu's own shape


async def test_bulk_import_takes_more_and_both_limits_are_settings(
    settings: Settings, db: Database, org: OrgCreds, area_codes: AreaCodes
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096, "max_bulk_body_bytes": 64 * 1024})
    app = create_app(settings=small, db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    ) as http:
        agent = {"name": "n", "prompt": "p" * 5000}
        refused = await http.post("/v1/agents", json=agent, headers=org.bearer)
        assert refused.status_code == 413 and "4,096 bytes" in refused.json()["detail"]
        area = area_codes.take()
        rows = [{"phone_number": f"+1{area}555{i:04d}", "name": "x" * 40} for i in range(100, 200)]
        body = {"numbers": rows}
        assert 4096 < len(json.dumps(body)) < 64 * 1024
        imported = await http.post("/v1/phone-numbers/import", json=body, headers=org.bearer)
        assert imported.status_code == 200, imported.text[:300]
        too_many = {"numbers": rows * 10}
        assert len(json.dumps(too_many)) > 64 * 1024
        refused = await http.post("/v1/phone-numbers/import", json=too_many, headers=org.bearer)
        assert refused.status_code == 413 and "65,536 bytes" in refused.json()["detail"]


# -- Every free-form field has a bound -----------------------------------------------------------------


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text[:500]
    (error,) = response.json()["errors"]
    return dict(error)


async def test_agent_fields_are_bounded_by_name(client: httpx.AsyncClient, org: OrgCreds) -> None:
    big = {f"k{i}": "v" * 100 for i in range(200)}  # about 21 KiB as JSON
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "a", "metadata": big}, "metadata", "at most 16 KiB as JSON"),
        ({"name": "a" * 201}, "name", "at most 200 characters"),
        ({"name": "a", "prompt": "p" * 100_001}, "prompt", "at most 100000 characters"),
        ({"name": "a", "initial_message": "m" * 5001}, "initial_message", "at most 5000 characters"),
        (
            {"name": "a", "actions": [{"type": "end_conversation", "id": "i" * 65}]},
            "actions[0].id",
            "at most 64 characters",
        ),
        ({"name": "a", "voice": {"voice_id": "v" * 201}}, "voice.voice_id", "at most 200 characters"),
    ]
    for body, field, words in cases:
        error = _error(await client.post("/v1/agents", json=body, headers=org.bearer))
        assert error["field"] == field and words in error["message"], (field, error)
    ok = await client.post(
        "/v1/agents", json={"name": "a", "metadata": {"k": "v" * 15_000}}, headers=org.bearer
    )
    assert ok.status_code == 201


async def test_number_fields_are_bounded_by_name(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    bought = await client.post("/v1/phone-numbers", json={"area_code": area_codes.take()}, headers=org.bearer)
    assert bought.status_code == 201, bought.text
    url = f"/v1/phone-numbers/{bought.json()['id']}"
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"extras": {"zudu": {"k": "x" * 40_000}}}, "extras", "at most 32 KiB as JSON"),
        ({"metadata": {"k": "x" * 17_000}}, "metadata", "at most 16 KiB as JSON"),
        ({"name": "n" * 256}, "name", "at most 255 characters"),
        ({"call_handler": {"type": "ai_agent", "flow_id": "f" * 5000}}, "call_handler.flow_id", "4096"),
        ({"sip_outbound": {"codecs": ["c" * 300]}}, "sip_outbound.codecs[0]", "at most 255"),
    ]
    for body, field, words in cases:
        error = _error(await client.patch(url, json=body, headers=org.bearer))
        assert error["field"] == field and words in error["message"], (field, error)
    after = await client.get(url, headers=org.bearer)
    assert after.json()["extras"] in ({}, None) and after.json()["metadata"] in ({}, None)  # nothing written
    defaults = {"metadata": {"k": "v"}, "padding": "x" * 70_000}
    response = await client.post(
        "/v1/phone-numbers/import",
        json={"numbers": [{"phone_number": "+14155550100"}], "defaults": defaults},
        headers=org.bearer,
    )
    error = _error(response)
    assert error["field"] == "defaults" and "at most 64 KiB as JSON" in error["message"]


async def test_dialect_fields_are_bounded_by_name(client: httpx.AsyncClient, org: OrgCreds) -> None:
    retell = await client.post(
        "/retell/import-phone-number",
        json={"phone_number": "+14155550100", "termination_uri": "t.example.com", "nickname": "n" * 5000},
        headers=org.bearer,
    )
    assert retell.status_code == 400 and "nickname" in retell.text and "4096" in retell.text
    vocode = await client.post(
        "/vocode/v1/numbers/update",
        params={"phone_number": "+14155550100"},
        json={"example_context": {"k": "x" * 20_000}},
        headers=org.bearer,
    )
    assert vocode.status_code == 422, vocode.text[:300]
    detail = vocode.json()["detail"]
    assert any("example_context" in d["loc"] and "16 KiB" in d["msg"] for d in detail), detail
