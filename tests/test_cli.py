"""The CLI forms other tooling scripts against, run as real subprocesses."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from numberplane.kernel.db import Database
from tests.support import (
    LiveServer,
    create_pg_database,
    drop_pg_database,
    free_port,
    pg_base_url,
    process_alive,
    wait_for,
)


def cli(*args: str, db_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "numberplane", *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
async def own_db_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the session's kind, for a command that acts on everything it holds."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
        return
    base = pg_base_url()
    assert base is not None
    url = await create_pg_database(base)
    yield url
    await drop_pg_database(url)


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

        async def refused() -> bool:
            answer = await http.get("/v1/phone-numbers", headers={"Authorization": f"Bearer {key['token']}"})
            return answer.status_code == 401

        # The server is another process than the CLI: it hears of the revocation through its
        # change listener (NOTIFY on PostgreSQL, the change_log poll every 0.25 s on SQLite), and
        # never accepts the key again. (The one-second bound: tests/tenancy/test_keycache.py.)
        await wait_for(refused, timeout=2.0, interval=0.05)
        assert await refused() and await refused()
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


async def test_orgs_create_prints_the_token_alone_and_lists_never_show_secrets(db_url: str) -> None:
    made = cli("orgs", "create", "Plain", db_url=db_url)
    token = made.stdout
    assert token.count("\n") == 1 and token.endswith("\n")  # TOKEN=$(numberplane orgs create X)
    token = token.strip()
    key_id, _, secret = token.partition(".")
    assert key_id.startswith("key_") and len(secret) > 30
    assert key_id in made.stderr and secret not in made.stderr

    orgs = [json.loads(line) for line in cli("orgs", "list", "--json", db_url=db_url).stdout.splitlines()]
    mine = [o for o in orgs if o["name"] == "Plain"]
    assert len(mine) == 1 and mine[0]["default_carrier_account_id"]
    human = cli("orgs", "list", db_url=db_url)
    assert mine[0]["id"] in human.stdout and "org(s)" in human.stderr

    org_id = mine[0]["id"]
    cli("keys", "create", "--org", org_id, "--name", "second", db_url=db_url)
    cli("keys", "revoke", key_id, db_url=db_url)
    keys = [
        json.loads(line)
        for line in cli("keys", "list", "--org", org_id, "--json", db_url=db_url).stdout.splitlines()
    ]
    assert [(k["id"] == key_id, k["revoked_at"] is not None) for k in keys] == [(True, True), (False, False)]
    listed = cli("keys", "list", "--org", org_id, db_url=db_url)
    for out in (listed.stdout + listed.stderr, json.dumps(keys)):
        assert secret not in out and "secret" not in out
    assert "2 key(s), 1 live" in listed.stderr
    missing = cli("keys", "list", "--org", "no-such-org", db_url=db_url, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


async def test_import_report_rows_are_the_csv_data_rows(db_url: str, tmp_path: Path) -> None:
    org = json.loads(cli("orgs", "create", "Rows", "--json", db_url=db_url).stdout)
    source = tmp_path / "numbers.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number"])
        for number in ("+13034562001", "+13034562002", "+13034562003", "+13034562001", "+13034562004"):
            writer.writerow([number])
    report = tmp_path / "report.csv"
    done = cli(
        "numbers", "import", str(source), "--org", org["org_id"], "--report", str(report),
        "--batch-size", "2", db_url=db_url, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "unchanged 1" in done.stderr
    rows = list(csv.DictReader(report.open()))
    assert [r["row"] for r in rows] == ["1", "2", "3", "4", "5"]
    # Row 4 repeats row 1 (in an earlier batch) with the same settings: already imported, so
    # unchanged (a rerun of a cut-off import is safe); within a batch the message names the
    # 1-based row it duplicates.
    assert [r["status"] for r in rows] == ["created", "created", "created", "unchanged", "created"]
    dup = tmp_path / "dup.csv"
    dup.write_text("phone_number\n+13034562101\n+13034562102\n+1 303 456 2101\n")
    done = cli("numbers", "import", str(dup), "--org", org["org_id"], db_url=db_url, check=False)
    reported = list(csv.DictReader(done.stdout.splitlines()))
    assert reported[2]["row"] == "3" and reported[2]["error"] == "duplicates row 1"


async def test_reconcile_says_what_it_skipped_and_sums_up(own_db_url: str) -> None:
    cli("migrate", db_url=own_db_url)
    org = json.loads(cli("orgs", "create", "Idle", "--json", db_url=own_db_url).stdout)
    human = cli("carriers", "reconcile", db_url=own_db_url)
    assert "idle sandbox account(s): no numbers and no purchases in flight" in human.stdout
    assert "reconciled 0 account(s): 0 numbers checked" in human.stdout
    lines = [
        json.loads(line)
        for line in cli("carriers", "reconcile", "--json", db_url=own_db_url).stdout.splitlines()
    ]
    assert [line["object"] for line in lines] == ["reconcile_skipped"]
    assert lines[0]["carrier"] == "sandbox" and lines[0]["reason"] and org["org_id"]


async def test_worker_once_says_what_it_did(db_url: str) -> None:
    human = cli("worker", "--once", db_url=db_url)
    assert "deliveries:" in human.stdout and "billing:" in human.stdout and "still waiting:" in human.stdout
    summary = json.loads(cli("worker", "--once", "--json", db_url=db_url).stdout)
    assert set(summary) == {"deliveries", "waiting", "jobs"}
    assert {"delivered", "retrying", "failed", "fanned_out"} <= set(summary["deliveries"])
    assert summary["jobs"]["billing"].endswith("renewed")


def test_serve_refuses_workers_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    done = cli("serve", "--workers", "2", db_url=url, check=False)
    assert done.returncode == 2 and "needs PostgreSQL" in done.stderr


async def test_serve_port_is_where_numbers_point(db_url: str, tmp_path: Path) -> None:
    """--port decides the default public URL (the numbers' voice webhooks); an explicit public URL
    on another port is said once at start-up."""
    org = json.loads(cli("orgs", "create", "Port", "--json", db_url=db_url).stdout)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NUMBERPLANE_PUBLIC_URL"}
    env.update(NUMBERPLANE_DATABASE_URL=db_url, NUMBERPLANE_RUN_WORKER_IN_PROCESS="0")
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "numberplane", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_for(lambda: _up(http), timeout=30, interval=0.2)
            bought = await http.post(
                "/v1/phone-numbers",
                json={"area_code": "720"},
                headers={"Authorization": f"Bearer {org['token']}"},
            )
            assert bought.status_code == 201, bought.text
            assert bought.json()["carrier_sync"]["voice_url"] == f"http://127.0.0.1:{port}/voice/twilio"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "warning" not in err.lower()

    env["NUMBERPLANE_PUBLIC_URL"] = "https://numbers.example.com"
    port = free_port()
    other = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "numberplane", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_for(lambda: _up(http), timeout=30, interval=0.2)
    finally:
        other.terminate()
        _, err = other.communicate(timeout=20)
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and "https://numbers.example.com (port 443)" in warnings[0]


async def _up(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


def _workers_of(pid: int) -> list[int]:
    """The server processes under a ``serve --workers`` supervisor."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            for child in handle.read().split():
                with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                    if b"--multiprocessing-fork" in cmdline.read():
                        found.append(int(child))
    return found


def _serve_two_workers(db_url: str) -> tuple[subprocess.Popen[bytes], int]:
    """``numberplane serve --workers 2`` on a free port: (the supervisor, the port)."""
    port = free_port()
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url, "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "numberplane", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, port


async def _two_workers_up(proc: subprocess.Popen[bytes], port: int) -> list[int]:
    """Once the server answers and both workers run: their pids."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        await wait_for(lambda: _up(http), timeout=30, interval=0.2)
    workers: list[int] = await wait_for(
        lambda: len(found := _workers_of(proc.pid)) == 2 and found, timeout=30
    )
    return workers


async def test_serve_workers_stop_when_their_supervisor_is_killed(db_url: str, backend: str) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) takes its workers with it: each
    asked the kernel for SIGTERM at its parent's death and shuts down as if told to."""
    if backend != "postgresql":
        pytest.skip("--workers above 1 is PostgreSQL's")
    proc, port = _serve_two_workers(db_url)
    workers: list[int] = []
    try:
        workers = await _two_workers_up(proc, port)
        proc.kill()
        proc.wait(10)
        await wait_for(lambda: not any(process_alive(worker) for worker in workers), timeout=25, interval=0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        for worker in workers:
            if process_alive(worker):
                os.kill(worker, signal.SIGKILL)


def _connections_of(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` that process ``pid`` holds (``/proc``)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                    count += 1
    return count


def _ask_healthz(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    for sock in sockets:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


async def test_serve_workers_share_new_connections_and_come_back(db_url: str, backend: str) -> None:
    """Each worker accepts on a socket of its own (SO_REUSEPORT), so a burst of new connections
    is spread over them (with one shared socket, one worker took 30 of 32); a worker that dies
    is started again on its socket; SIGHUP replaces each in turn; SIGTERM stops them all, and the
    supervisor exits 0."""
    if backend != "postgresql":
        pytest.skip("--workers above 1 is PostgreSQL's")
    proc, port = _serve_two_workers(db_url)
    sockets: list[socket.socket] = []
    try:
        workers = await _two_workers_up(proc, port)
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(64)]
        _ask_healthz(sockets)
        held = [_connections_of(worker, port) for worker in workers]
        assert sum(held) == 64
        assert min(held) >= 16, held  # even: 32 each; a binomial spread below 16 is 1 in 30,000

        os.kill(workers[0], signal.SIGKILL)
        again = await wait_for(
            lambda: len(found := _workers_of(proc.pid)) == 2 and workers[0] not in found and found, timeout=30
        )
        assert workers[1] in again
        for sock in sockets:
            sock.close()
        # New connections hashed to the dead worker's socket are answered by its successor.
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(32)]
        _ask_healthz(sockets)

        # SIGHUP: every worker replaced in turn, the server answering throughout.
        proc.send_signal(signal.SIGHUP)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def replaced() -> list[int] | bool:
                assert (await http.get("/healthz")).status_code == 200
                found = _workers_of(proc.pid)
                return len(found) == 2 and not set(found) & set(again) and found

            fresh = await wait_for(replaced, timeout=40, interval=0.1)
        assert proc.poll() is None

        proc.terminate()
        assert proc.wait(45) == 0
        assert not any(process_alive(worker) for worker in [*again, *fresh])
    finally:
        for sock in sockets:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
