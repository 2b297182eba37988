"""Bulk inserts (``insert_records``) store exactly what an ordinary SQLAlchemy INSERT stores."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

from sqlalchemy import select, text

from numberplane.calls.models import Call
from numberplane.calls.service import COLUMNS
from numberplane.kernel.db import SQLITE_MAX_VARIABLES, Actor, Database, RawJSON, insert_records
from numberplane.kernel.ids import new_id
from tests.support import OrgCreds

_calls: Any = Call.__table__


def _record(org_id: str, call_id: str, at: dt.datetime) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "id": new_id(),
        "org_id": org_id,
        "phone_number_id": None,
        "phone_number": "+14155550100",
        "from_number": 'anonymous "caller" \u00e9',
        "direction": "inbound",
        "carrier": "api",
        "carrier_account_id": None,
        "carrier_call_id": call_id,
        "status": "completed",
        "outcome": "agent_sip",
        "reason": "agent",
        "agent_id": None,
        "agent_version": 3,
        "webhook": RawJSON('{"asked":false,"status":"not_configured"}'),
        "decision_ms": 0.125,
        "trace": RawJSON(json.dumps([{"step": "number", "result": "active", "detail": '\u00e9 "q"'}])),
        "sip_code": 200,
        "started_at": at,
        "answered_at": at + dt.timedelta(seconds=1, microseconds=5),
        "ended_at": at + dt.timedelta(seconds=31),
        "duration_s": 30,
        "created_at": at,
        "updated_at": at + dt.timedelta(microseconds=1),
    }
    return tuple(values[column] for column in COLUMNS)


async def test_bulk_rows_are_stored_as_an_ordinary_insert_stores_them(db: Database, org: OrgCreds) -> None:
    at = dt.datetime(2026, 12, 4, 18, 0, 0, 0, tzinfo=dt.UTC)  # whole seconds: the shortest form
    bulk = [_record(org.org_id, f"bulk-{i}", at + dt.timedelta(microseconds=i * 7)) for i in range(3)]
    plain = [_record(org.org_id, f"plain-{i}", at + dt.timedelta(microseconds=i * 7)) for i in range(3)]
    async with db.uow(Actor.system()) as uow:
        await insert_records(uow.session, _calls, COLUMNS, bulk)
        rows = [dict(zip(COLUMNS, record, strict=True)) for record in plain]
        await uow.session.execute(_calls.insert(), rows)
        await uow.commit()

    def stored(rows: list[Any]) -> list[tuple[Any, ...]]:
        # as the database holds them (SQLite's text for dates and JSON), less the ids that differ
        return [
            tuple(v for k, v in row._mapping.items() if k not in ("id", "carrier_call_id")) for row in rows
        ]

    async def raw(prefix: str) -> list[Any]:
        # the stored values, not SQLAlchemy's reading of them (SQLite keeps dates and JSON as text)
        wanted = ", ".join(COLUMNS)
        statement = text(f"SELECT {wanted} FROM calls WHERE carrier_call_id LIKE :like ORDER BY id")
        return list((await session.execute(statement, {"like": f"{prefix}-%"})).all())

    async with db.session() as session:
        raw_bulk, raw_plain = await raw("bulk"), await raw("plain")
        read = (
            await session.scalars(
                select(Call).where(Call.carrier_call_id.like("bulk-%")).order_by(Call.carrier_call_id)
            )
        ).all()
    assert len(raw_bulk) == 3 and stored(raw_bulk) == stored(raw_plain)
    # and they read back as the values written
    assert [r.trace for r in read] == [[{"step": "number", "result": "active", "detail": '\u00e9 "q"'}]] * 3
    assert read[2].answered_at is not None
    assert read[2].answered_at.replace(tzinfo=dt.UTC) == at + dt.timedelta(seconds=1, microseconds=19)
    assert read[0].webhook == {"asked": False, "status": "not_configured"} and read[0].decision_ms == 0.125


async def test_more_rows_than_one_statement_binds_are_all_written(db: Database, org: OrgCreds) -> None:
    """SQLite binds at most SQLITE_MAX_VARIABLES values a statement (the default build's limit;
    this connection is held to it, whatever its build allows): a larger batch goes in chunks."""
    at = dt.datetime(2026, 12, 4, 18, tzinfo=dt.UTC)
    count = SQLITE_MAX_VARIABLES // len(COLUMNS) + 35
    records = [_record(org.org_id, f"chunk-{i:05d}", at) for i in range(count)]
    async with db.uow(Actor.system()) as uow:
        if db.dialect == "sqlite":
            raw = await (await uow.session.connection()).get_raw_connection()
            connection = raw.driver_connection._connection  # aiosqlite's sqlite3 connection
            connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_MAX_VARIABLES)
        await insert_records(uow.session, _calls, COLUMNS, records)
        await uow.commit()
    async with db.session() as session:
        written = await session.scalars(
            select(Call.carrier_call_id).where(Call.carrier_call_id.like("chunk-%")).order_by(Call.id)
        )
        assert list(written) == [f"chunk-{i:05d}" for i in range(count)]
