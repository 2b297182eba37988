"""``numberplane carriers add-platform`` / ``list-platform``: the operator's platform-wide accounts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import delete

from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import credentials_of
from numberplane.kernel.db import Database
from tests.fakes.twilio import FakeTwilio

NUMBERPLANE = str(Path(sys.executable).parent / "numberplane")


async def run(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url}
    return await asyncio.to_thread(
        subprocess.run,
        [NUMBERPLANE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_add_and_list_platform_accounts(
    db: Database, db_url: str, fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    creds = tmp_path / "twilio.json"
    creds.write_text(
        json.dumps({"account_sid": fake_twilio.account_sid, "auth_token": fake_twilio.auth_token})
    )
    added = await run(
        "carriers", "add-platform", "--carrier", "twilio", "--name", "Platform Twilio",
        "--credentials-file", str(creds), "--api-base-url", fake_twilio.url, "--json",
        db_url=db_url,
    )  # fmt: skip
    try:
        assert added.returncode == 0, added.stderr
        account = json.loads(added.stdout)
        assert account["scope"] == "platform" and account["secrets_set"] == ["auth_token"]
        assert fake_twilio.auth_token not in added.stdout + added.stderr
        async with db.session() as session:
            stored = await session.get(CarrierAccount, account["id"])
            assert stored is not None and stored.org_id is None
            assert credentials_of(stored) == {"auth_token": fake_twilio.auth_token}
        listed = await run("carriers", "list-platform", "--json", db_url=db_url)
        assert listed.returncode == 0, listed.stderr
        assert account["id"] in [json.loads(line)["id"] for line in listed.stdout.splitlines() if line]
        assert fake_twilio.auth_token not in listed.stdout

        bad = await run(
            "carriers", "add-platform", "--carrier", "twilio", "--name", "Bad",
            "--set", f"account_sid={fake_twilio.account_sid}", "--set", "auth_token=nope",
            "--api-base-url", fake_twilio.url,
            db_url=db_url,
        )  # fmt: skip
        assert bad.returncode == 1 and "Twilio rejected the account's credentials" in bad.stderr
        malformed = await run(
            "carriers", "add-platform", "--carrier", "telnyx", "--name", "T", "--set", "api_key=KEY1",
            db_url=db_url,
        )  # fmt: skip
        assert malformed.returncode == 2 and "texml_application_id" in malformed.stderr
    finally:
        async with db.session() as session:
            await session.execute(delete(CarrierAccount).where(CarrierAccount.org_id.is_(None)))
            await session.commit()
