"""Bad input gets a clear 4xx in the API's own shape, never a 500, never a partial write.

Hypothesis sends arbitrary JSON (mixing real field names with junk values) to every /v1 write
route and checks the answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from numberplane.kernel.db import Database
from numberplane.numbers.models import PhoneNumber
from tests.support import OrgCreds

FIELDS = [
    "phone_number",
    "area_code",
    "country",
    "type",
    "name",
    "language",
    "voice",
    "inbound_agents",
    "outbound_agents",
    "fallback",
    "call_handler",
    "sip_outbound",
    "capabilities",
    "metadata",
    "allowed_inbound_countries",
    "callback_forwarding_number",
    "numbers",
    "defaults",
    "connect",
    "actions",
    "webhook",
    "prompt",
    "inbound_webhook_url",
    "extras",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6) | json_values


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert body["status"] == response.status_code and body["code"] and body["detail"]


async def test_no_body_makes_a_v1_write_route_fail_with_500(
    client: httpx.AsyncClient, db: Database, org: OrgCreds
) -> None:
    agent = (await client.post("/v1/agents", json={"name": "Fuzz"}, headers=org.bearer)).json()
    routes = [
        ("POST", "/v1/agents"),
        ("PATCH", f"/v1/agents/{agent['id']}"),
        ("POST", "/v1/phone-numbers/import"),
        ("PATCH", "/v1/phone-numbers/+14155550100"),
    ]
    loop = asyncio.get_running_loop()
    results: list[Any] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(route=st.sampled_from(routes), body=bodies)
    def probe(route: tuple[str, str], body: Any) -> None:
        method, path = route
        future = asyncio.run_coroutine_threadsafe(
            client.request(method, path, json=body, headers=org.bearer), loop
        )
        results.append(future.result(timeout=30))

    await asyncio.to_thread(probe)
    for response in results:
        _check(response)
    # Buying is fuzzed with bodies that cannot succeed (no area code in stock), to keep stock intact.
    for raw in [{"area_code": "999"}, {"phone_number": None}, {"inbound_agents": "x"}, [], "x", 3]:
        _check(await client.post("/v1/phone-numbers", json=raw, headers=org.bearer))
    async with db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PhoneNumber)
            .where(PhoneNumber.org_id == org.org_id, PhoneNumber.status.in_(("pending", "failed")))
        )
    assert count == 0  # nothing half-written


async def test_malformed_json_is_a_clear_400(client: httpx.AsyncClient, org: OrgCreds) -> None:
    response = await client.post(
        "/v1/agents", content=b"{not json", headers={**org.bearer, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert "line 1 column 2 (char 1)" in response.json()["detail"]
