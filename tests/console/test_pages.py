"""The console's other pages over HTTP: agents and their versions, API keys (the token shown once,
revocation felt by /v1 at once), webhook endpoints (the secret shown once, deliveries, resend),
carrier accounts (verify at the carrier), the audit log's filters."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.console.conftest import ConsoleUser, console_client, csrf_of, sign_in
from tests.support import AreaCodes, OrgCreds


async def test_agents_keys_webhooks_accounts_and_audit(  # type: ignore[no-untyped-def]
    app, client: httpx.AsyncClient, org: OrgCreds, owner: ConsoleUser
) -> None:
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)

        # Agents: create, edit as a new version, read an old version.
        page = await http.get("/console/agents")
        made = await http.post(
            "/console/agents", data={"csrf": csrf_of(page.text), "name": "Concierge", "prompt": "Version one"}
        )
        assert made.status_code == 303
        agent_url = made.headers["location"].split("?")[0]
        agent_id = agent_url.rsplit("/", 1)[1]
        edited = await http.post(
            agent_url, data={"csrf": csrf_of(page.text), "name": "Concierge", "prompt": "Version two"}
        )
        assert edited.status_code == 303
        assert (await client.get(f"/v1/agents/{agent_id}", headers=org.bearer)).json()["version"] == 2
        shown = await http.get(agent_url)
        assert "Version 2</a> (latest)" in shown.text and "Version two" in shown.text
        old = await http.get(f"{agent_url}/versions/1")
        assert old.status_code == 200 and "Version one" in old.text

        # API keys: the token is on the response that made it, and nowhere after; revoke works at once.
        keys = await http.get("/console/api-keys")
        created = await http.post(
            "/console/api-keys", data={"csrf": csrf_of(keys.text), "name": "from console"}
        )
        token = re.search(r'aria-label="New token">([^<]+)<', created.text).group(1)  # type: ignore[union-attr]
        assert (
            await client.get("/v1/phone-numbers", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        key_id = token.split(".")[0]
        listed = await http.get("/console/api-keys")
        assert key_id in listed.text and token not in listed.text
        revoked = await http.post(f"/console/api-keys/{key_id}/revoke", data={"csrf": csrf_of(listed.text)})
        assert revoked.status_code == 303
        assert (
            await client.get("/v1/phone-numbers", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401

        # Webhooks: the signing secret once; an event's delivery listed; resend.
        hooks = await http.get("/console/webhooks")
        endpoint = await http.post(
            "/console/webhooks", data={"csrf": csrf_of(hooks.text), "url": "http://127.0.0.1:9/hook"}
        )
        assert endpoint.status_code == 200 and "whsec_" in endpoint.text
        assert "whsec_" not in (await http.get("/console/webhooks")).text
        endpoint_id = re.search(r'href="/console/webhooks/([^"]+)"', endpoint.text).group(1)  # type: ignore[union-attr]

        # Carrier accounts: the org's sandbox account verifies at its carrier.
        accounts = await http.get("/console/carrier-accounts")
        account_id = re.search(r'/console/carrier-accounts/([^/"]+)/verify', accounts.text).group(1)  # type: ignore[union-attr]
        verified = await http.post(
            f"/console/carrier-accounts/{account_id}/verify", data={"csrf": csrf_of(accounts.text)}
        )
        assert verified.status_code == 303 and "notice=verified" in verified.headers["location"]

        # The audit log, filtered by the person: every change above is theirs, via the console.
        audit = await http.get("/console/audit", params={"actor_id": owner.email, "via": "console"})
        actions = set(re.findall(r"<td>([a-z_]+\.[a-z_]+)</td>", audit.text))
        assert {"agent.created", "agent.updated", "api_key.created", "api_key.revoked"} <= actions
        assert any(a.startswith("webhook_endpoint") for a in actions), actions
    deliveries = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=org.bearer)
    assert deliveries.status_code == 200


async def test_import_progress_json_and_report(  # type: ignore[no-untyped-def]
    app, org: OrgCreds, owner: ConsoleUser, area_codes: AreaCodes
) -> None:
    area = area_codes.take()  # this test's own: other tests buy 555-01XX numbers by area code
    rows = "".join(f"+1 {area} 555 {i:04d},Line {i}\n" for i in range(1200))  # two batches
    source = ("phone_number,name\n" + rows + "bad,Broken\n").encode()
    async with console_client(app) as http:
        await sign_in(http, owner.email, owner.password)
        page = await http.get("/console/import")
        started = await http.post(
            "/console/import",
            data={"csrf": csrf_of(page.text)},
            files={"file": ("numbers.csv", source, "text/csv")},
        )
        assert started.status_code == 303
        job_url = started.headers["location"]
        for _ in range(600):
            status = (await http.get(f"{job_url}/status")).json()
            assert 0 <= status["done"] <= status["total"] == 1201
            if status["finished"]:
                break
            await asyncio.sleep(0.05)
        assert status == {**status, "done": 1201, "created": 1200, "failed": 1, "error": None}
        report = (await http.get(f"{job_url}/report.csv")).text.splitlines()
        assert report[0] == "row,phone_number,status,id,error_field,error"
        assert len(report) == 1202 and report[-1].startswith("1201,bad,failed,,phone_number,")
        summary = await http.get(job_url)
        assert "Imported 1,200, failed 1, of 1,201 rows" in summary.text

        unusable = await http.post(
            "/console/import",
            data={"csrf": csrf_of(page.text)},
            files={"file": ("u32.csv", "phone_number\n+15055550001\n".encode("utf-32"), "text/csv")},
        )
        assert unusable.status_code == 422 and "UTF-32" in unusable.text
