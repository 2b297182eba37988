"""Purchase safety under crashes: the real server in a subprocess, SIGKILLed at each step of a buy.

For each fail point the core buy flow passes (``buy.after_order``: order recorded, carrier not
called; ``buy.after_carrier``: carrier said yes, nothing committed; ``buy.after_commit``: all
committed, response not sent) the server is started with ``NUMBERPLANE_FAULTS=<point>:kill``, a
purchase is sent, the process dies, a clean server is started on the same PostgreSQL database,
and reconcile runs. Then: no number was bought twice at the fake carrier, the fake holds no
number without an active record, no record is active that the fake does not hold, nothing is
left pending, and a retry with the same Idempotency-Key returns the same number.

Also: the carrier performs the purchase and the response is lost (with and without the
carrier answering the follow-up lookup).

PostgreSQL only (a fresh database per module): set NUMBERPLANE_TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from numberplane.carriers import service as carriers
from numberplane.carriers import service as carriers_service
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.schemas import PlatformAccountCreate
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.serving import PROTOCOL
from numberplane.kernel.settings import get_settings
from numberplane.migrate import upgrade
from numberplane.numbers.models import Order, PhoneNumber
from numberplane.numbers.reconcile import reconcile_account
from tests.fakes import FakeCarrier
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio
from tests.support import OrgCreds, create_pg_database, drop_pg_database, free_port, pg_base_url

POINTS = ("buy.after_order", "buy.after_carrier", "buy.after_commit")
START_TIMEOUT = 30.0
PUBLIC_URL = "https://numberplane.example.test"
CARRIER_TIMEOUT = 2  # seconds; a lost response costs this much


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    base = pg_base_url()
    if base is None:
        pytest.skip(
            "crash-safety tests need PostgreSQL: set NUMBERPLANE_TEST_DATABASE_URL "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    url = asyncio.run(create_pg_database(base))
    upgrade(url)
    yield url
    asyncio.run(drop_pg_database(url))


@pytest.fixture(scope="module")
async def healthy(pg_url: str) -> AsyncIterator[Server]:
    """A server without faults on the same database: the restart every kill test needs."""
    async with server(pg_url) as running:
        yield running


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    yield database
    await database.dispose()


class Server:
    """``uvicorn numberplane.app:create_app --factory`` in its own process."""

    def __init__(self, db_url: str, faults: str = "") -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "NUMBERPLANE_DATABASE_URL": db_url,
            # One public URL for every server of a test: a restart must not look like drift.
            "NUMBERPLANE_PUBLIC_URL": PUBLIC_URL,
            "NUMBERPLANE_ALLOW_PRIVATE_URLS": "1",
            "NUMBERPLANE_RUN_WORKER_IN_PROCESS": "0",
            "NUMBERPLANE_FAULTS": faults,
            "NUMBERPLANE_IDEMPOTENCY_WAIT_SECONDS": "2",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "numberplane.app:create_app",
            "--factory",
            "--http",
            PROTOCOL,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: ASYNC220
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.stderr()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                await asyncio.sleep(0.1)

    async def died(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the server did not die at the fail point")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    def stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


@contextlib.asynccontextmanager
async def server(db_url: str, faults: str = "") -> AsyncIterator[Server]:
    running = await Server(db_url, faults).start()
    try:
        yield running
    finally:
        running.stop()


async def make_org(db: Database) -> OrgCreds:
    async with db.uow(Actor.cli()) as uow:
        org, key = await carriers_service.open_org(uow=uow, name="Crash test org")
        await uow.commit()
    return OrgCreds(org_id=org.id, key_id=key.key_id, secret=key.secret, token=key.token)


async def connect(db: Database, org: OrgCreds, carrier: str, fake: FakeCarrier) -> str:
    """A platform account on the fake, as the operator adds one (``carriers add-platform
    --api-base-url``): servers in other processes need the fake's address in the account itself,
    and an org's own account never carries one. The org buys on it like on its own."""
    if isinstance(fake, FakeTwilio):
        body: dict[str, Any] = {
            "credentials": {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
            "api_base_url": fake.url,
        }
    else:
        assert isinstance(fake, FakeTelnyx)
        body = {
            "credentials": {"api_key": fake.api_key, "texml_application_id": fake.texml_application_id},
            "api_base_url": fake.url + "/v2",
        }
    data = PlatformAccountCreate.model_validate(
        {"carrier": carrier, "name": f"{carrier} for {org.org_id}", "timeout_seconds": 1, **body}
    )
    account = await carriers.create_account(db=db, actor=Actor.cli(), org_id=None, data=data)
    if carrier == "telnyx":
        async with db.session() as session:
            await session.execute(
                update(CarrierAccount)
                .where(CarrierAccount.id == account.id)
                .values(config={**account.config, "order_poll_interval": 0})
            )
            await session.commit()
    return account.id


def start_fake(carrier: str) -> FakeCarrier:
    fake: FakeCarrier = FakeTwilio() if carrier == "twilio" else FakeTelnyx()
    return fake.start()


_lines = itertools.count(100)


def fresh_number(carrier: str) -> str:
    """A number in the fake's stock not used by another test on this module's database."""
    line = next(_lines)
    assert line < 120, "the fakes stock 20 numbers per area code"
    return f"+1{'415' if carrier == 'twilio' else '312'}5550{line:03d}"


LOSE_OP = {"twilio": "buy", "telnyx": "order"}
LOOKUP_OP = {"twilio": "list", "telnyx": "orders"}


async def purchase(
    url: str, org: OrgCreds, body: dict[str, Any], key: str, timeout: float = 30
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(
            f"{url}/v1/phone-numbers", json=body, headers={**org.bearer, "Idempotency-Key": key}
        )


async def reconcile(db: Database, account_id: str) -> dict[str, Any]:
    """Reconcile the platform account as the operator does (``numberplane carriers reconcile``)."""
    report = await reconcile_account(db=db, account_id=account_id, actor=Actor.cli())
    return dict(report.model_dump(mode="json"))


@pytest.fixture(autouse=True)
def _same_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconcile runs in this process: it must expect the servers' public URL."""
    monkeypatch.setattr(get_settings(), "public_url", PUBLIC_URL)


async def assert_books_agree(db: Database, account_id: str, fake: FakeCarrier) -> None:
    """No double buy; the carrier's holdings and our active records are the same set; nothing pending."""
    assert fake.bought_twice() == []
    async with db.session() as session:
        active = set(
            await session.scalars(
                select(PhoneNumber.phone_number).where(
                    PhoneNumber.carrier_account_id == account_id, PhoneNumber.status == "active"
                )
            )
        )
        pending_orders = await session.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.carrier_account_id == account_id, Order.status == "pending")
        )
        pending_numbers = await session.scalar(
            select(func.count())
            .select_from(PhoneNumber)
            .where(PhoneNumber.carrier_account_id == account_id, PhoneNumber.status == "pending")
        )
    held = fake.owned_numbers()  # type: ignore[attr-defined]
    assert held == active, f"carrier holds {sorted(held)}, we record active {sorted(active)}"
    assert pending_orders == 0 and pending_numbers == 0


@pytest.mark.parametrize("carrier", ["twilio", "telnyx"])
@pytest.mark.parametrize("point", POINTS)
async def test_kill_at_each_step_of_a_purchase(
    pg_url: str, pg: Database, healthy: Server, point: str, carrier: str
) -> None:
    fake = start_fake(carrier)
    try:
        org = await make_org(pg)
        account_id = await connect(pg, org, carrier, fake)
        number = fresh_number(carrier)
        body = {"phone_number": number, "carrier_account_id": account_id}
        key = f"crash-{point}-{carrier}"

        async with server(pg_url, faults=f"{point}:kill") as doomed:
            with pytest.raises(httpx.TransportError):
                response = await purchase(doomed.url, org, body, key)
                pytest.fail(f"the server answered instead of dying: {response.status_code} {response.text}")
            assert await doomed.died() == -signal.SIGKILL

        expected_purchases = [] if point == "buy.after_order" else [number]
        assert fake.purchases == expected_purchases

        # Restarted: a clean server on the same database reconciles, then the client retries.
        report = await reconcile(pg, account_id)
        assert report["errors"] == [], report
        if point != "buy.after_commit":
            assert report["orders"] == {"completed": 1}, report
        assert report["drift"] == []
        await assert_books_agree(pg, account_id, fake)
        assert fake.purchases == [number]

        retry = await purchase(healthy.url, org, body, key)
        assert retry.status_code in (200, 201), retry.text
        again = retry.json()
        assert again["phone_number"] == number and again["status"] == "active"
        assert retry.headers.get("idempotent-replayed") == "true"
        async with pg.session() as session:
            ids = list(
                await session.scalars(
                    select(PhoneNumber.id).where(
                        PhoneNumber.phone_number == number, PhoneNumber.org_id == org.org_id
                    )
                )
            )
        assert ids == [again["id"]]
        await assert_books_agree(pg, account_id, fake)
        assert fake.purchases == [number]  # the retry bought nothing
        # The number points at Numberplane's routing endpoint.
        if carrier == "twilio":
            assert fake.by_number(number)["voice_url"] == f"{PUBLIC_URL}/voice/twilio"  # type: ignore[attr-defined]
    finally:
        fake.stop()


@pytest.mark.parametrize("carrier", ["twilio", "telnyx"])
async def test_response_lost_after_the_purchase_happened(pg: Database, healthy: Server, carrier: str) -> None:
    fake = start_fake(carrier)
    try:
        org = await make_org(pg)
        account_id = await connect(pg, org, carrier, fake)
        number = fresh_number(carrier)
        body = {"phone_number": number, "carrier_account_id": account_id}
        running = healthy
        # The carrier buys, the answer never arrives: the server asks the carrier instead of retrying.
        fake.faults.lose_response(LOSE_OP[carrier])
        first = await purchase(running.url, org, body, f"lost-{carrier}")
        assert first.status_code in (201, 202), first.text
        assert first.json()["status"] in ("active", "pending")
        for _ in range(3):  # Telnyx: the order may still be completing
            if fake.purchases:
                break
            await reconcile(pg, account_id)
        if fake.purchases and first.json()["status"] == "pending":
            await reconcile(pg, account_id)
        await assert_books_agree(pg, account_id, fake)
        assert fake.purchases == [number]
        retry = await purchase(running.url, org, body, f"lost-{carrier}")
        assert retry.json()["id"] == first.json()["id"] and retry.json()["status"] == "active"
        assert fake.purchases == [number]
    finally:
        fake.stop()


@pytest.mark.parametrize("carrier", ["twilio", "telnyx"])
async def test_lost_response_and_failed_lookup_stay_pending_until_reconcile(
    pg: Database, healthy: Server, carrier: str
) -> None:
    fake = start_fake(carrier)
    try:
        org = await make_org(pg)
        account_id = await connect(pg, org, carrier, fake)
        number = fresh_number(carrier)
        body = {"phone_number": number, "carrier_account_id": account_id}
        running = healthy
        fake.faults.lose_response(LOSE_OP[carrier])
        fake.faults.fail(LOOKUP_OP[carrier], 503)
        first = await purchase(running.url, org, body, f"lost-2-{carrier}")
        # Ambiguous: never reported as failed, never bought again.
        assert first.status_code in (202, 503), first.text
        assert fake.purchases in ([number], [])  # Telnyx completes the order on a later poll
        replay = await purchase(running.url, org, body, f"lost-2-{carrier}")
        assert replay.status_code in (202, 503)
        report = await reconcile(pg, account_id)
        if report["orders"] == {"pending": 1}:  # Telnyx: the order was still completing
            report = await reconcile(pg, account_id)
        assert report["orders"] == {"completed": 1}, report
        await assert_books_agree(pg, account_id, fake)
        assert fake.purchases == [number]
        done = await purchase(running.url, org, body, f"lost-2-{carrier}")
        assert done.status_code in (200, 201) and done.json()["status"] == "active"
        assert done.json()["phone_number"] == number
        assert fake.purchases == [number]
        async with pg.session() as session:
            order = await session.scalar(select(Order).where(Order.idempotency_key == f"lost-2-{carrier}"))
        assert order is not None and order.status == "completed"
        assert json.dumps(order.request)  # the original request is kept with the order
    finally:
        fake.stop()
