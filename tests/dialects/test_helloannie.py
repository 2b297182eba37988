"""HelloAnnie over raw HTTP against the live server: the seed, every endpoint, errors, tenancy."""

from __future__ import annotations

import httpx

from tests.dialects.helpers import make_agent, v1_count, v1_get
from tests.support import OrgCreds

BASE = "/helloannie/v1"
PHONE_NUMBER_KEYS = {
    "id",
    "createdAt",
    "updatedAt",
    "orgId",
    "botId",
    "number",
    "name",
    "language",
    "outbound",
    "verifiedCallerId",
    "callbackForwardingNumber",
    "voiceId",
    "speed",
    "stability",
    "similarity",
    "style",
}


def _seed_body(org: OrgCreds, bot_id: str, area: str) -> dict:
    # The seed's curl example (000_524b7fd06532ac0b.txt) with real ids, plus an area code.
    return {
        "orgId": org.org_id,
        "botId": bot_id,
        "name": "Front desk",
        "language": "ENGLISH",
        "voiceId": "FRIENDLY_BRIGHT",
        "verifiedCallerId": "+14155550123",
        "callbackForwardingNumber": "+14155550124",
        "areaCode": area,
    }


async def _create(http: httpx.AsyncClient, org: OrgCreds, bot_id: str, area: str) -> dict:
    response = await http.post(
        f"{BASE}/phone-numbers", json=_seed_body(org, bot_id, area), headers=org.bearer
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_seed_create_returns_the_documented_shape(
    http: httpx.AsyncClient, org: OrgCreds, area_codes
) -> None:
    bot = await make_agent(http, org, "Bot", voice={"voice_id": "x", "stability": 0.25, "style": 0.5})
    area = area_codes.take()
    response = await http.post(
        f"{BASE}/phone-numbers", json=_seed_body(org, bot["id"], area), headers=org.bearer
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and set(body) <= {"success", "data", "message"}
    data = body["data"]
    assert set(data) == PHONE_NUMBER_KEYS
    assert data["orgId"] == org.org_id and data["botId"] == bot["id"]
    assert data["number"].startswith(f"+1{area}5550")
    assert (
        data["name"] == "Front desk"
        and data["language"] == "ENGLISH"
        and data["voiceId"] == "FRIENDLY_BRIGHT"
    )
    assert data["verifiedCallerId"] == "+14155550123" and data["callbackForwardingNumber"] == "+14155550124"
    assert data["outbound"] is False
    assert data["createdAt"].endswith("Z") and data["updatedAt"].endswith("Z")
    # Tuning HelloAnnie cannot set comes from the stored number, else the bot's voice.
    assert data["stability"] == 0.25 and data["style"] == 0.5 and data["speed"] is None

    core = await v1_get(http, org, data["id"])
    assert core["language"] == "en" and core["voice"]["voice_id"] == "friendly_bright"
    assert core["inbound_agents"][0]["agent_id"] == bot["id"]
    assert core["verified_caller_id"] == "+14155550123"

    await http.patch(
        f"/v1/phone-numbers/{data['id']}",
        json={"voice": {**core["voice"], "speed": 1.25, "stability": 0.75}},
        headers=org.bearer,
    )
    got = (await http.get(f"{BASE}/phone-numbers/{data['id']}", headers=org.bearer)).json()["data"]
    assert got["speed"] == 1.25 and got["stability"] == 0.75 and got["style"] == 0.5
    assert got["voiceId"] == "FRIENDLY_BRIGHT"


async def test_get_list_patch_attach_delete(http: httpx.AsyncClient, org: OrgCreds, area_codes) -> None:
    bot = await make_agent(http, org, "Bot A")
    other_bot = await make_agent(http, org, "Bot B")
    created = await _create(http, org, bot["id"], area_codes.take())
    ref = created["id"]

    listed = await http.get(f"{BASE}/phone-numbers", params={"orgId": org.org_id}, headers=org.bearer)
    assert listed.status_code == 200
    numbers = listed.json()["data"]["phoneNumbers"]
    assert [n for n in numbers if n["id"] == ref] == [
        {**created, "updatedAt": numbers[[n["id"] for n in numbers].index(ref)]["updatedAt"]}
    ]

    patched = await http.patch(
        f"{BASE}/phone-numbers/{ref}",
        json={"language": "SPANISH", "voiceId": "CALM_REASSURING", "verifiedCallerId": None},
        headers=org.bearer,
    )
    assert patched.status_code == 200, patched.text
    p = patched.json()["data"]
    assert p["language"] == "SPANISH" and p["voiceId"] == "CALM_REASSURING"
    assert p["verifiedCallerId"] is None and p["callbackForwardingNumber"] == "+14155550124"
    assert p["name"] == "Front desk" and p["botId"] == bot["id"]

    attached = await http.post(
        f"{BASE}/phone-numbers/{ref}/attach", json={"botId": other_bot["id"]}, headers=org.bearer
    )
    assert attached.status_code == 200, attached.text
    assert attached.json()["data"]["botId"] == other_bot["id"]
    assert (await v1_get(http, org, ref))["inbound_agents"][0]["agent_id"] == other_bot["id"]

    deleted = await http.delete(f"{BASE}/phone-numbers/{ref}", headers=org.bearer)
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    gone = await http.get(f"{BASE}/phone-numbers/{ref}", headers=org.bearer)
    assert gone.status_code == 404 and gone.json()["success"] is False
    assert (await http.delete(f"{BASE}/phone-numbers/{ref}", headers=org.bearer)).status_code == 404


async def test_errors_and_tenancy(
    http: httpx.AsyncClient, org: OrgCreds, other_org: OrgCreds, area_codes
) -> None:
    bot = await make_agent(http, org, "Bot")
    foreign_bot = await make_agent(http, other_org, "Theirs")
    before = await v1_count(http, org)

    wrong_org = await http.post(
        f"{BASE}/phone-numbers",
        json=_seed_body(org, bot["id"], area_codes.take()) | {"orgId": other_org.org_id},
        headers=org.bearer,
    )
    assert wrong_org.status_code == 403
    assert wrong_org.json()["success"] is False and wrong_org.json()["message"]
    listed = await http.get(f"{BASE}/phone-numbers", params={"orgId": other_org.org_id}, headers=org.bearer)
    assert listed.status_code == 403

    foreign = await http.post(
        f"{BASE}/phone-numbers",
        json=_seed_body(org, foreign_bot["id"], area_codes.take()),
        headers=org.bearer,
    )
    assert foreign.status_code == 404 and foreign.json()["success"] is False
    assert await v1_count(http, org) == before

    invalid = await http.post(
        f"{BASE}/phone-numbers",
        json=_seed_body(org, bot["id"], area_codes.take()) | {"language": "KLINGON"},
        headers=org.bearer,
    )
    assert invalid.status_code == 400 and invalid.json()["success"] is False
    assert invalid.json()["errors"][0]["field"] == "language"

    unauthorized = await http.get(f"{BASE}/phone-numbers")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["success"] is False

    mine = await _create(http, org, bot["id"], area_codes.take())
    for method, path, body in (
        ("GET", f"{BASE}/phone-numbers/{mine['id']}", None),
        ("PATCH", f"{BASE}/phone-numbers/{mine['id']}", {"language": "FRENCH"}),
        ("POST", f"{BASE}/phone-numbers/{mine['id']}/attach", {"botId": foreign_bot["id"]}),
        ("DELETE", f"{BASE}/phone-numbers/{mine['id']}", None),
    ):
        response = await http.request(method, path, json=body, headers=other_org.bearer)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"success": False, "message": response.json()["message"]}
    theirs = (await http.get(f"{BASE}/phone-numbers", headers=other_org.bearer)).json()["data"][
        "phoneNumbers"
    ]
    assert mine["id"] not in [n["id"] for n in theirs]
    assert (await v1_get(http, org, mine["id"]))["language"] == "en"
    # Attaching someone else's bot to my number is a 404 too, and changes nothing.
    response = await http.post(
        f"{BASE}/phone-numbers/{mine['id']}/attach", json={"botId": foreign_bot["id"]}, headers=org.bearer
    )
    assert response.status_code == 404
    assert (await v1_get(http, org, mine["id"]))["inbound_agents"][0]["agent_id"] == bot["id"]
