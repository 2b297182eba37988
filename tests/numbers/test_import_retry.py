"""A retried import is safe (issue 10, item 15): rows it already imported with the same settings
read ``unchanged``, and an ``Idempotency-Key`` replays the first report, even after the server
running the first attempt was killed between two committed chunks."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import AreaCodes, OrgCreds, ServerProcess


def _rows(area: str, count: int, exchange: str = "201") -> list[dict]:
    return [{"phone_number": f"+1{area}{exchange}{i:04d}", "name": f"line {i}"} for i in range(count)]


async def test_rows_already_imported_with_the_same_settings_are_unchanged(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    rows = _rows(area_codes.take(), 6)
    for row in rows[:2]:
        row.update({"metadata": {"team": "a"}, "language": "en-US", "extras": {"zudu": {"x": 1}}})
    first = await client.post("/v1/phone-numbers/import", json={"numbers": rows[:4]}, headers=org.bearer)
    assert first.json()["created"] == 4
    ids = [r["id"] for r in first.json()["results"]]
    changed = [*rows[:3], {**rows[3], "name": "renamed"}, *rows[4:]]
    again = await client.post("/v1/phone-numbers/import", json={"numbers": changed}, headers=org.bearer)
    report = again.json()
    assert (report["created"], report["unchanged"], report["failed"]) == (2, 3, 1), report
    statuses = [r["status"] for r in report["results"]]
    assert statuses == ["unchanged", "unchanged", "unchanged", "failed", "created", "created"]
    assert [r["id"] for r in report["results"][:3]] == ids[:3]
    assert report["results"][3]["error"]["code"] == "already_exists"  # an import never overwrites


async def test_an_idempotency_key_replays_the_first_report(
    client: httpx.AsyncClient, org: OrgCreds, area_codes: AreaCodes
) -> None:
    body = {"numbers": _rows(area_codes.take(), 3)}
    headers = {**org.bearer, "Idempotency-Key": "import-1"}
    first = await client.post("/v1/phone-numbers/import", json=body, headers=headers)
    assert first.status_code == 200 and first.json()["created"] == 3
    assert "idempotent-replayed" not in first.headers
    again = await client.post("/v1/phone-numbers/import", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post(
        "/v1/phone-numbers/import", json={"numbers": body["numbers"][:1]}, headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused", other.text


async def test_an_import_cut_off_by_a_killed_server_is_retried_safely(
    db_url: str, org: OrgCreds, area_codes: AreaCodes
) -> None:
    rows = _rows(area_codes.take(), 2500)  # three chunks of 1,000
    headers = {**org.bearer, "Idempotency-Key": "cut-off-import"}
    doomed = ServerProcess(db_url, env={"NUMBERPLANE_FAULTS": "import.after_chunk:kill"})
    try:
        doomed.wait_ready()
        with pytest.raises(httpx.HTTPError):  # killed after its first chunk committed
            await asyncio.to_thread(
                httpx.post,
                doomed.url + "/v1/phone-numbers/import",
                json={"numbers": rows},
                headers=headers,
                timeout=60,
            )
    finally:
        doomed.stop()
    server = ServerProcess(db_url, env={"NUMBERPLANE_IMPORT_STALE_SECONDS": "0.5"})
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            retry = await http.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=headers)
            assert retry.status_code == 200, retry.text[:300]
            report = retry.json()
            assert (report["unchanged"], report["created"], report["failed"]) == (1000, 1500, 0)
            replay = await http.post("/v1/phone-numbers/import", json={"numbers": rows}, headers=headers)
            assert replay.headers["idempotent-replayed"] == "true" and replay.json() == report
    finally:
        server.stop()
