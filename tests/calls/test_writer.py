"""The call-record writer process (``calls.writer``): a server hands its batches to a child of
its own, which writes them exactly as the server would; while the child is gone the server
writes them itself, and it starts a new child a few seconds later."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from numberplane.app import create_app
from numberplane.calls import writer as writer_module
from numberplane.calls.models import Call
from numberplane.calls.recorder import Recorder
from numberplane.calls.service import COLUMNS, DecisionFacts, Observation
from numberplane.calls.writer import WriterProcess, pack, row_of, unpack
from numberplane.kernel.db import Database, RawJSON
from numberplane.kernel.ids import new_id
from numberplane.kernel.settings import Settings
from tests.routing.world import World
from tests.support import LiveServer, OrgCreds, free_port, process_alive, wait_for

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def observation(org_id: str, call_id: str, *, status: str = "ringing", webhook: Any = None) -> Observation:
    """A decision as routing hands it over: its webhook facts and trace still to be built."""
    facts = DecisionFacts(
        "agent_stream",
        "agent",
        "ag_1",
        2,
        (lambda: {"asked": True, "status": "ok", "latency_ms": 12.5}) if webhook is None else webhook,
        0.31,
        lambda: [{"step": "number", "result": "found", "detail": 'a "quoted" \u00e9 detail'}],
    )
    return Observation(
        org_id, "twilio", call_id, T0, "pn_1", "+14155550100", "+12125550123", None, status, None, None, facts
    )


def test_a_batch_crosses_the_pipe_as_the_server_would_write_it() -> None:
    shared = RawJSON('{"asked":false,"status":"not_configured"}')
    batch = [observation("org", f"c{i}", webhook=shared) for i in range(3)]
    batch.append(
        Observation("org", "twilio", "c0", T0 + dt.timedelta(seconds=30), status="completed", duration_s=28)
    )
    back = unpack(pack([row_of(obs) for obs in batch]))
    assert [(o.key, o.at, o.status, o.duration_s) for o in back] == [
        (o.key, o.at, o.status, o.duration_s) for o in batch
    ]
    facts = back[0].decision
    assert facts is not None and back[3].decision is None
    assert (facts.outcome, facts.reason, facts.agent_id, facts.agent_version, facts.decision_ms) == (
        "agent_stream",
        "agent",
        "ag_1",
        2,
        0.31,
    )
    assert isinstance(facts.trace, RawJSON) and isinstance(facts.webhook, RawJSON)
    assert facts.trace == '[{"step":"number","result":"found","detail":"a \\"quoted\\" \\u00e9 detail"}]'
    assert facts.webhook == shared
    # One text shared by many calls stays one object (pickled once, stored as the same text).
    assert back[1].decision is not None and back[1].decision.webhook is facts.webhook


async def rows_of(db: Database, call_ids: list[str]) -> list[dict[str, Any]]:
    async with db.reading() as session:
        result = await session.execute(select(Call.__table__).where(Call.carrier_call_id.in_(call_ids)))
        return sorted((dict(row) for row in result.mappings()), key=lambda r: r["carrier_call_id"])


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("id", "carrier_call_id")}


async def test_the_child_writes_what_the_server_would_and_closing_drains_it(
    db: Database, db_url: str, org: OrgCreds
) -> None:
    """The same observations, written by the child and in process, make the same rows; closing
    the recorder writes what it holds and the child leaves."""
    tag = new_id()[:8]
    recorder = Recorder(db, writer=WriterProcess(db_url), interval=5.0)
    recorder.start()
    await wait_for(lambda: recorder.writer is not None and recorder.writer.pid is not None, timeout=30)
    assert recorder.writer is not None
    pid = recorder.writer.pid
    assert pid is not None and pid != os.getpid()
    # Not on its command line: the database URL (with any password) goes down the pipe.
    cmdline = _cmdline(pid)
    assert b"numberplane.calls.writer" in cmdline and not any(db_url.encode() in part for part in cmdline)
    five_calls(recorder, org.org_id, f"w{tag}")
    await recorder.aclose()  # the queue goes to the child, which writes it and exits
    assert recorder.written == 5 and recorder.failed == 0
    await wait_for(lambda: not process_alive(pid), timeout=10)

    inline = Recorder(db)  # no writer: the same observations, written in this process
    five_calls(inline, org.org_id, f"i{tag}")
    assert await inline.flush() == 5

    by_child = await rows_of(db, [f"w{tag}-{i}" for i in range(5)])
    by_server = await rows_of(db, [f"i{tag}-{i}" for i in range(5)])
    assert len(by_child) == 5 and set(by_child[0]) == set(COLUMNS)
    assert [comparable(r) for r in by_child] == [comparable(r) for r in by_server]
    first = by_child[0]
    assert (first["status"], first["duration_s"]) == ("completed", 38)
    assert first["trace"] == [{"step": "number", "result": "found", "detail": 'a "quoted" \u00e9 detail'}]
    assert first["webhook"] == {"asked": True, "status": "ok", "latency_ms": 12.5}


def _cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def completed(org_id: str, call_id: str) -> Observation:
    return Observation(
        org_id, "twilio", call_id, T0 + dt.timedelta(seconds=40), status="completed", duration_s=38
    )


def five_calls(recorder: Recorder, org_id: str, prefix: str) -> None:
    """Five decided calls ``{prefix}-0`` to ``-4``, the first of them then completed."""
    for i in range(5):
        recorder.add(observation(org_id, f"{prefix}-{i}"))
    recorder.add(completed(org_id, f"{prefix}-0"))


async def test_a_batch_the_database_refuses_is_counted_and_the_child_goes_on(
    db: Database, db_url: str, org: OrgCreds
) -> None:
    tag = new_id()[:8]
    recorder = Recorder(db, writer=WriterProcess(db_url), interval=5.0)
    recorder.start()
    try:
        await wait_for(lambda: recorder.writer is not None and recorder.writer.pid is not None, timeout=30)
        assert recorder.writer is not None
        pid = recorder.writer.pid
        bad = observation(org.org_id, f"bad{tag}")
        bad.org_id = None  # type: ignore[assignment]  # a call of no org: the calls table refuses it
        recorder.add(bad)
        assert await recorder.flush() == 0
        assert recorder.failed == 1
        recorder.add(observation(org.org_id, f"ok{tag}"))
        assert await recorder.flush() == 1
        assert recorder.writer.pid == pid  # the same child
        assert [r["carrier_call_id"] for r in await rows_of(db, [f"bad{tag}", f"ok{tag}"])] == [f"ok{tag}"]
    finally:
        await recorder.aclose()


@pytest.fixture
def server_with_writer(settings: Settings, db_url: str) -> Iterator[tuple[LiveServer, Any]]:
    port = free_port()
    mine = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "call_writer": "process"})
    app = create_app(settings=mine, db=Database(db_url))
    server = LiveServer(app, port=port).start()
    yield server, app
    server.stop()


@pytest.fixture
async def api(server_with_writer: tuple[LiveServer, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_with_writer[0].url, timeout=30) as c:
        yield c


async def test_call(api: httpx.AsyncClient, org: OrgCreds, number: str) -> dict[str, Any]:
    response = await api.post(
        "/v1/test-calls",
        json={"to": number, "from": "+12125550123", "duration_s": 17, "answer": True},
        headers=org.bearer,
    )
    assert response.status_code == 201, response.text
    call: dict[str, Any] = response.json()
    assert (call["status"], call["duration_s"], call["outcome"]) == ("completed", 17, "agent_stream")
    assert [s["step"] for s in call["trace"]] == ["number", "country", "webhook", "agent"]
    return call


test_call.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


async def test_a_served_call_is_recorded_by_the_child_and_by_the_server_while_it_is_gone(
    api: httpx.AsyncClient,
    server_with_writer: tuple[LiveServer, Any],
    world: World,
    org: OrgCreds,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "RESTART_S", 0.5)
    recorder: Recorder = server_with_writer[1].state.call_recorder
    writer = recorder.writer
    assert writer is not None
    agent = await world.agent(stream_url="wss://agents.example.com/w")
    number = (await world.number(world.sandbox, agents=[(agent, None, 1.0)])).phone_number

    await wait_for(lambda: writer.pid is not None, timeout=30)
    first_pid, by_child = writer.pid, writer.written
    await test_call(api, org, number)
    assert writer.written > by_child  # the child wrote the record the API answered with

    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    await wait_for(lambda: writer.pid is None, timeout=10)
    # Within RESTART_S of its death: the server writes the records itself.
    by_child = writer.written
    await test_call(api, org, number)
    assert writer.written == by_child

    await asyncio.sleep(0.6)  # past RESTART_S: the next batch starts a new child
    await test_call(api, org, number)
    assert writer.pid not in (None, first_pid) and writer.written > by_child


@pytest.mark.parametrize(
    ("setting", "url", "workers", "cpus", "expected"),
    [
        ("process", "postgresql+asyncpg://h/db", 4, 2, True),
        ("inline", "postgresql+asyncpg://h/db", 1, 8, False),
        ("auto", "postgresql+asyncpg://h/db", 1, 2, True),  # a core left for the writer
        ("auto", "postgresql+asyncpg://h/db", 2, 2, False),  # every core runs a server
        ("auto", "sqlite+aiosqlite:///./numberplane.db", 1, 2, True),
        ("auto", "sqlite+aiosqlite:///./numberplane.db", 1, 1, False),
        ("process", "sqlite+aiosqlite:///:memory:", 1, 8, False),  # no other process can open it
        ("process", "sqlite+aiosqlite://", 1, 8, False),
    ],
)
def test_which_servers_write_through_a_writer_process(
    setting: str, url: str, workers: int, cpus: int, expected: bool
) -> None:
    assert writer_module.chosen(setting, url, workers=workers, cpus=cpus) is expected


def test_auto_counts_uvicorns_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert writer_module.chosen("auto", "postgresql+asyncpg://h/db", cpus=2) is False
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert writer_module.chosen("auto", "postgresql+asyncpg://h/db", cpus=2) is True


async def test_a_record_that_cannot_be_built_never_reaches_the_answer(db: Database) -> None:
    """``Recorder.add`` runs on the answer's path: a trace that fails to build costs the record
    (counted), never the answer."""

    def broken() -> list[dict[str, str]]:
        raise RuntimeError("no trace")

    obs = observation("org", "broken")
    assert obs.decision is not None
    obs.decision.trace = broken
    recorder = Recorder(db)
    recorder.add(obs)
    assert (len(recorder), recorder.failed) == (0, 1)
    recorder.add(observation("org", "fine"))
    assert len(recorder) == 1


async def test_a_stopping_server_stops_writing_when_the_database_refuses(tmp_path: Path) -> None:
    """Shutdown drains the queue while the database takes it: after the first refused batch the
    rest is counted as dropped at once, not tried batch after batch."""
    empty = Database(f"sqlite+aiosqlite:///{tmp_path}/no-tables.db")  # every batch refused
    try:
        recorder = Recorder(empty, batch=2)
        for i in range(10):
            recorder.add(observation("org", f"c{i}"))
        await recorder.aclose()
        assert (recorder.written, recorder.failed, recorder.dropped, len(recorder)) == (0, 2, 8, 0)
    finally:
        await empty.dispose()


async def test_a_stopping_server_drains_what_the_database_takes(db: Database) -> None:
    recorder = Recorder(db, batch=2)
    for i in range(7):
        recorder.add(observation(new_id(), f"d{i}"))
    await recorder.aclose()
    assert (recorder.written, recorder.failed, recorder.dropped, len(recorder)) == (7, 0, 0, 0)
