"""Each dialect answers bad input with the status its vendor documents (issue 10, item 16).

The expected statuses come from the vendors' documents (shared/reference/vendor-apis.md,
retell-openapi.yaml, twilio-api-v2010.json): Retell's create and import list only 400 (an
unknown agent is 400, so the retell-sdk raises BadRequestError) while its operations on an
existing number use 422 for not-found; SignalWire's list and search have no 422; Vocode's
FastAPI answers 422 for invalid input and 404 for a missing number; Vapi, Zudu, HelloAnnie,
Freya and Twilio answer 400 for invalid input and 404 for what is not there. The Retell cases
also run through the retell-sdk, which is what a client sees.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from retell import BadRequestError, Retell, UnprocessableEntityError

from tests.support import LiveServer, OrgCreds

MISSING_AGENT = "agent_00000000000000000000000000"
MISSING_NUMBER = "+12025550177"
MISSING_ID = "00000000-0000-7000-8000-000000000000"

# (method, path, body or form, documented status, text the answer must contain)
CASES: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("POST", "/retell/create-phone-number", {"inbound_agent_id": MISSING_AGENT}, 400, "not found"),
    (
        "POST",
        "/retell/import-phone-number",
        {
            "phone_number": "+12025550178",
            "termination_uri": "sip.example.com",
            "inbound_agent_id": MISSING_AGENT,
        },
        400,
        "",
    ),
    ("POST", "/retell/create-phone-number", {"area_code": "nope"}, 400, "area_code"),
    ("GET", f"/retell/get-phone-number/{MISSING_NUMBER}", None, 422, ""),
    ("PATCH", f"/retell/update-phone-number/{MISSING_NUMBER}", {"nickname": "x"}, 422, ""),
    ("DELETE", f"/retell/delete-phone-number/{MISSING_NUMBER}", None, 422, ""),
    ("GET", "/retell/v2/list-phone-numbers?sort_order=sideways", None, 400, "sort_order"),
    ("GET", "/api/relay/rest/phone_numbers?page_size=0", None, 400, "page_size"),
    ("GET", "/api/relay/rest/phone_numbers/search?max_results=1000", None, 400, "max_results"),
    ("GET", f"/api/relay/rest/phone_numbers/{MISSING_ID}", None, 404, ""),
    ("PUT", f"/api/relay/rest/phone_numbers/{MISSING_ID}", {"name": "x"}, 404, ""),
    ("POST", "/api/relay/rest/phone_numbers", {"number": "nope"}, 422, "number"),
    ("GET", "/vocode/v1/numbers?phone_number=%2B12025550177", None, 404, ""),
    ("POST", "/vocode/v1/numbers/buy", {"area_code": "nope"}, 422, "area_code"),
    ("GET", f"/vapi/phone-number/{MISSING_ID}", None, 404, ""),
    ("POST", "/vapi/phone-number", {"provider": "nope"}, 400, "provider"),
    ("GET", "/zudu/api/phone-numbers/%2B12025550177", None, 404, ""),
    ("POST", "/zudu/api/phone-numbers/create", {"area_code": "nope"}, 400, "area_code"),
    ("GET", f"/helloannie/v1/phone-numbers/{MISSING_ID}", None, 404, ""),
    ("POST", "/helloannie/v1/phone-numbers", {"area_code": "nope"}, 400, ""),
    ("GET", f"/freya/api/v2/phone-numbers/{MISSING_ID}", None, 404, ""),
    ("POST", "/freya/api/v2/phone-numbers", {"number": "nope"}, 400, ""),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "names"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
async def test_documented_error_status(
    client: httpx.AsyncClient, org: OrgCreds, method: str, path: str, body: Any, status: int, names: str
) -> None:
    response = await client.request(method, path, json=body, headers=org.bearer, auth=org.basic)
    assert response.status_code == status, response.text
    assert names in response.text


async def test_twilio_documented_errors(client: httpx.AsyncClient, org: OrgCreds) -> None:
    base = f"/2010-04-01/Accounts/{org.key_id}"
    missing = await client.get(f"{base}/IncomingPhoneNumbers/PN{'0' * 32}.json", auth=org.basic)
    assert missing.status_code == 404 and missing.json()["code"] == 20404, missing.text
    invalid = await client.get(f"{base}/IncomingPhoneNumbers.json?PageSize=0", auth=org.basic)
    assert invalid.status_code == 400 and invalid.json()["status"] == 400, invalid.text


async def test_retell_sdk_sees_bad_request_for_an_unknown_agent(
    live_server: LiveServer, org: OrgCreds
) -> None:
    retell = Retell(api_key=org.token, base_url=live_server.url + "/retell", max_retries=0)
    with pytest.raises(BadRequestError):
        await asyncio.to_thread(
            retell.phone_number.create, inbound_agents=[{"agent_id": MISSING_AGENT, "weight": 1}]
        )
    with pytest.raises(BadRequestError):
        await asyncio.to_thread(
            retell.phone_number.import_,
            phone_number="+12025550179",
            termination_uri="sip.example.com",
            inbound_agents=[{"agent_id": MISSING_AGENT, "weight": 1}],
        )
    with pytest.raises(UnprocessableEntityError):  # not-found on an existing-number operation
        await asyncio.to_thread(retell.phone_number.retrieve, MISSING_NUMBER)
