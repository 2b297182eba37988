"""Schemathesis over the whole OpenAPI document (every operation, following its OpenAPI links
from create to get/patch/delete) finds no server error, on SQLite and PostgreSQL (issue 10,
item 12).

A time-bounded run: ``NUMBERPLANE_SCHEMATHESIS_SECONDS`` (default 20) per database, against a
real server on loopback, as the org's API key. It prints the figures (operations, test cases,
failures) and fails on any 5xx, naming the operations.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import LiveServer, OrgCreds

SECONDS = int(os.environ.get("NUMBERPLANE_SCHEMATHESIS_SECONDS", "20"))


async def test_no_server_errors_anywhere(live_server: LiveServer, org: OrgCreds, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    config = tmp_path / "schemathesis.toml"
    # Twilio's paths carry the account: it is the API key's id, which a generator cannot guess.
    config.write_text(f'[parameters]\n"path.AccountSid" = "{org.key_id}"\n')
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "--config-file", str(config), "run", f"{live_server.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {org.token}",
        "--max-time", str(SECONDS),
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
        "--seed", "10",
    ]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=SECONDS + 120
    )
    figures = json.loads(report.read_text())
    cases = figures["test_cases"]
    print(
        f"schemathesis: {figures['operations']['tested']}/{figures['operations']['total']} operations, "
        f"{cases['generated']:,} test cases, {cases['with_failures']} with failures, "
        f"{len(figures['failures'])} failure(s), {figures['running_time']:.0f} s"
    )
    assert figures["operations"]["tested"] == figures["operations"]["total"]
    assert figures["failures"] == [] and cases["with_failures"] == 0, json.dumps(figures["failures"])[:6000]
    assert done.returncode == 0, done.stdout[-4000:]
