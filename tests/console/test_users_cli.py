"""``numberplane users`` and the first start's owner, run as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from numberplane.kernel.db import Actor, Database
from numberplane.kernel.errors import ValidationFailed
from numberplane.tenancy import users
from tests.support import OrgCreds


def cli(*args: str, db_url: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "numberplane", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


async def test_users_create_list_remove(db_url: str, db: Database, org: OrgCreds) -> None:
    email = f"ana-{org.org_id[-6:]}@example.com"
    made = cli(
        "users", "create", email, "--org", org.org_id, "--role", "admin", "--json",
        db_url=db_url, stdin="a long enough password\n",
    )  # fmt: skip
    user = json.loads(made.stdout)
    assert user["email"] == email and user["role"] == "admin" and "password" not in made.stdout
    signed = await users.sign_in(db=db, email=email, password="a long enough password", address="10.8.0.1")
    assert signed.user.role == "admin" and signed.user.org_id == org.org_id

    listed = cli("users", "list", "--org", org.org_id, db_url=db_url)
    assert email in listed.stdout and "admin" in listed.stdout and "argon2" not in listed.stdout

    again = cli(
        "users", "create", email, "--org", org.org_id, db_url=db_url, stdin="another password\n", check=False
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    removed = cli("users", "remove", email, db_url=db_url)
    assert "removed" in removed.stderr
    assert await users.session_user(db=db, token=signed.token) is None  # the session ended with the user
    assert email not in cli("users", "list", "--org", org.org_id, db_url=db_url).stdout
    missing = cli("users", "remove", email, db_url=db_url, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


@pytest.mark.parametrize(
    ("email", "role", "password", "field"),
    [
        ("not-an-email", "viewer", "a long enough password", "email"),
        ("d@example.com", "god", "a long enough password", "role"),
        ("d@example.com", "viewer", "short", "password"),
    ],
)
async def test_bad_user_input_names_the_field(
    db: Database, org: OrgCreds, email: str, role: str, password: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        async with db.uow(Actor.cli(org.org_id)) as uow:
            await users.create_user(uow=uow, org_id=org.org_id, email=email, role=role, password=password)
    assert caught.value.errors[0].field == field
    assert all(u.email != email for u in await users.list_users(db=db, org_id=org.org_id))


async def test_first_start_creates_an_owner_and_prints_a_one_time_password(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from numberplane import cli as cli_module
    from numberplane.kernel.settings import reset_settings_cache
    from numberplane.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path}/first.db"
    await asyncio.to_thread(upgrade, url)
    monkeypatch.setenv("NUMBERPLANE_DATABASE_URL", url)
    reset_settings_cache()
    try:
        await cli_module._bootstrap_first_org("127.0.0.1", 18123)
        printed = capsys.readouterr().err
        assert "http://127.0.0.1:18123/console" in printed and "owner@localhost" in printed
        password = next(line.split()[1] for line in printed.splitlines() if line.startswith("password"))
        db = Database(url)
        try:
            signed = await users.sign_in(
                db=db, email="owner@localhost", password=password, address="10.7.0.1"
            )
            assert signed.user.role == "owner"
            await cli_module._bootstrap_first_org("127.0.0.1", 18123)  # a second start: nothing new
            assert "password" not in capsys.readouterr().err
            assert len(await users.list_users(db=db)) == 1
        finally:
            await db.dispose()
    finally:
        monkeypatch.delenv("NUMBERPLANE_DATABASE_URL")
        reset_settings_cache()
