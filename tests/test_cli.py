"""The CLI forms other tooling scripts against, run as real subprocesses."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from numberplane.kernel.db import Database
from tests.support import LiveServer


def cli(*args: str, db_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "numberplane", *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


async def test_orgs_keys_and_revoke(db_url: str, live_server: LiveServer, db: Database) -> None:
    cli("migrate", db_url=db_url)
    org = json.loads(cli("orgs", "create", "Acme", "--json", db_url=db_url).stdout)
    assert {"org_id", "key_id", "secret", "token"} <= set(org)
    assert org["token"] == f"{org['key_id']}.{org['secret']}"
    key = json.loads(cli("keys", "create", "--org", org["org_id"], "--json", db_url=db_url).stdout)
    assert key["org_id"] == org["org_id"] and key["key_id"] != org["key_id"]
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        ok = await http.get("/v1/phone-numbers", headers={"Authorization": f"Bearer {key['token']}"})
        assert ok.status_code == 200
        cli("keys", "revoke", key["key_id"], db_url=db_url)
        revoked = await http.get("/v1/phone-numbers", headers={"Authorization": f"Bearer {key['token']}"})
        assert revoked.status_code == 401
    missing = cli("keys", "create", "--org", "no-such-org", "--json", db_url=db_url, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


async def test_numbers_import_csv_with_report(db_url: str, tmp_path: Path) -> None:
    org = json.loads(cli("orgs", "create", "Importer", "--json", db_url=db_url).stdout)
    source = tmp_path / "numbers.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "name"])
        writer.writerow(["+1 (303) 456-1001", "Denver"])
        writer.writerow(["(303) 456-1002", "Denver 2"])
        writer.writerow(["nope", "Broken"])
    report = tmp_path / "report.csv"
    done = cli(
        "numbers",
        "import",
        str(source),
        "--org",
        org["org_id"],
        "--report",
        str(report),
        "--country",
        "US",
        db_url=db_url,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # one row failed
    assert "imported 2, failed 1" in done.stderr
    rows = list(csv.DictReader(report.open()))
    assert [r["status"] for r in rows] == ["created", "created", "failed"]
    assert rows[1]["phone_number"] == "+13034561002"
    assert rows[2]["error_field"] == "phone_number" and rows[2]["row"] == "3"
    no_header = tmp_path / "bad.csv"
    no_header.write_text("number\n+13034561003\n")
    bad = cli("numbers", "import", str(no_header), "--org", org["org_id"], db_url=db_url, check=False)
    assert bad.returncode == 2 and "phone_number column" in bad.stderr
