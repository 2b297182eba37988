"""Concurrent partial updates through two APIs never lose each other's change (issue 10, item 13).

Zudu's ``number_provider`` and Vocode's ``example_context`` both live in the number's ``extras``
(one JSON object). Each dialect lays its keys over the stored object; the merge happens inside
the update's transaction on the locked row, so two updates sent together both survive, every
time, on SQLite and PostgreSQL, through a real server.
"""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx

from tests.dialects.helpers import v1_buy, v1_get
from tests.support import AreaCodes, OrgCreds

ROUNDS = 25


async def test_zudu_and_vocode_updates_sent_together_both_survive(
    http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    number = await v1_buy(http, org, area_codes.take())
    e164 = number["phone_number"]
    zudu_path = f"/zudu/api/phone-numbers/{urllib.parse.quote(e164, safe='')}"
    for i in range(ROUNDS):
        provider = ("twilio", "plivo", "telnyx")[i % 3]
        context = {"round": i, "note": f"context {i}"}
        zudu, vocode = await asyncio.gather(
            http.patch(zudu_path, json={"number_provider": provider}, headers=org.key_headers),
            http.post(
                "/vocode/v1/numbers/update",
                params={"phone_number": e164},
                json={"example_context": context},
                headers=org.bearer,
            ),
        )
        assert zudu.status_code == 200, zudu.text
        assert vocode.status_code == 200, vocode.text
        extras = (await v1_get(http, org, number["id"]))["extras"]
        assert extras["zudu"]["number_provider"] == provider, (i, extras)
        assert extras["vocode"]["example_context"] == context, (i, extras)


async def test_a_v1_patch_and_a_dialect_update_together(
    http: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    """/v1 sets the name while Vocode sets its context: both land."""
    number = await v1_buy(http, org, area_codes.take())
    for i in range(10):
        v1, vocode = await asyncio.gather(
            http.patch(f"/v1/phone-numbers/{number['id']}", json={"name": f"line {i}"}, headers=org.bearer),
            http.post(
                "/vocode/v1/numbers/update",
                params={"phone_number": number["phone_number"]},
                json={"example_context": {"i": i}},
                headers=org.bearer,
            ),
        )
        assert v1.status_code == 200 and vocode.status_code == 200, (v1.text, vocode.text)
        got = await v1_get(http, org, number["id"])
        assert got["name"] == f"line {i}" and got["extras"]["vocode"]["example_context"] == {"i": i}
