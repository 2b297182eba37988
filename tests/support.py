"""Test support shared by every test package: backends, orgs, live servers on loopback."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import uvicorn
from sqlalchemy.engine import make_url

from numberplane.kernel.serving import PROTOCOL

PG_ENV = "NUMBERPLANE_TEST_DATABASE_URL"


def pg_base_url() -> str | None:
    raw = os.environ.get(PG_ENV)
    if not raw:
        return None
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


async def create_pg_database(base: str) -> str:
    """A fresh database on the server behind ``base``; returns its URL."""
    import asyncpg

    url = make_url(base)
    name = f"np_test_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(test_url: str) -> None:
    import asyncpg

    url = make_url(test_url)
    # Connect to the base database (never the one being dropped).
    base = make_url(pg_base_url() or test_url.rsplit("/", 1)[0] + "/postgres")
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=base.database or "postgres",
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


def nanp_area_codes() -> Iterator[str]:
    """US geographic area codes whose fictional 555-01XX block is valid (sandbox purchases in tests):
    not the 500s (personal numbers) or 900 (premium rate), which are not local numbers."""
    for area in range(201, 990):
        num = phonenumbers.parse(f"+1{area}5550100")
        geographic = phonenumbers.number_type(num) == phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE
        if geographic and phonenumbers.region_code_for_number(num) == "US":
            code = str(area)
            if code not in ("800", "833", "844", "855", "866", "877", "888"):
                yield code


# Area codes that tests write out in 555 numbers of their own (+1 415 555 0100 and the like):
# never handed out, so a generated number cannot collide with a written one.
WRITTEN_OUT = frozenset({"202", "212", "213", "303", "312", "415", "505", "720"})


class AreaCodes:
    """Hands out US area codes not yet used in this test session, so sandbox stock never runs dry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes = [code for code in nanp_area_codes() if code not in WRITTEN_OUT]
        self._next = 0

    def take(self) -> str:
        with self._lock:
            code = self._codes[self._next % len(self._codes)]
            self._next += 1
            return code


@dataclass(frozen=True)
class OrgCreds:
    org_id: str
    key_id: str
    secret: str
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def key_headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.key_id, "X-API-SECRET": self.secret}

    @property
    def basic(self) -> tuple[str, str]:
        return (self.key_id, self.secret)


def operator_base_url(monkeypatch: Any, carrier: str, url: str) -> None:
    """Point ``carrier``'s API at ``url`` the operator's way (``NUMBERPLANE_<CARRIER>_API_BASE_URL``),
    for this test: every adapter built in this process reads it."""
    from numberplane.kernel.settings import get_settings

    monkeypatch.setattr(get_settings(), f"{carrier}_api_base_url", url)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1", **config: Any) -> None:
        self.port = port or free_port()
        config.setdefault("http", PROTOCOL)  # as ``numberplane serve`` runs
        self.config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="on", access_log=False, **config
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class ServerProcess:
    """``numberplane.app:create_app`` under uvicorn in its own process (its own caches)."""

    def __init__(self, db_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": db_url,
            "NUMBERPLANE_LOG_LEVEL": "WARNING",
            "NUMBERPLANE_CALL_WRITER": "process",  # as served: records by a writer child
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "numberplane.app:create_app", "--factory",
                "--http", PROTOCOL, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                "--no-access-log",
            ],
            env=env,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "server exited"
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def reference_file(name: str) -> Path:
    """A vendor document from ``shared/reference/``, which sits beside the checkout (CI) or
    further up (a git worktree); a path that does not exist when there is none."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "reference" / name
        if candidate.exists():
            return candidate
    return here.parents[1].parent / "shared" / "reference" / name


async def listen(db: Any, org_id: str, event_types: list[str] | None = None, *, enabled: bool = True) -> str:
    """Give ``org_id`` a webhook endpoint taking ``event_types`` (none: every type), so events
    written only for listened-to orgs (call records') are written. Its URL is never dialled in
    these tests (no delivery worker runs them). Returns its id."""
    from numberplane.events.models import WebhookEndpoint
    from numberplane.kernel.crypto import encrypt
    from numberplane.kernel.ids import new_id

    endpoint_id = new_id()
    async with db.session() as session:
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                org_id=org_id,
                url="https://hooks.example.com/calls",
                event_types=list(event_types or []),
                secret_enc=encrypt("whsec_test"),
                enabled=enabled,
            )
        )
        await session.commit()
    return endpoint_id
