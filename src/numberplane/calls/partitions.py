"""PostgreSQL: the calls table is range-partitioned by month on ``started_at``.

Migration 0007 creates this month's and next month's partitions (``calls_pYYYYMM``) and a
default partition. The retention job (``calls.retention``) keeps the next month's partition
ready before it is needed and drops every partition whose whole month is past the retention
(a ``DROP TABLE``: no row-by-row delete, no bloat). Rows that still land in the default
partition (a month nobody prepared, back-dated data) and rows in a partly expired month are
deleted by the bounded-batch pruning that SQLite uses too, so both give the same answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from numberplane.kernel.db import Database

log = logging.getLogger("numberplane.calls")

_NAME = re.compile(r"^calls_p(\d{4})(\d{2})$")


def month_of(moment: dt.datetime) -> dt.datetime:
    return dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)


def next_month(month: dt.datetime) -> dt.datetime:
    return dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=dt.UTC)


def name_of(month: dt.datetime) -> str:
    return f"calls_p{month:%Y%m}"


async def partitions(db: Database) -> list[str]:
    """The monthly partitions of ``calls``, oldest first."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'calls'"
            )
        )
        return sorted(r[0] for r in rows if _NAME.match(r[0]))


async def ensure(db: Database, *, now: dt.datetime, ahead: int = 1) -> list[str]:
    """Create this month's partition and the next ``ahead`` months' if missing; the names made."""
    made: list[str] = []
    existing = set(await partitions(db))
    month = month_of(now)
    for _ in range(ahead + 1):
        following = next_month(month)
        name = name_of(month)
        if name not in existing:
            try:
                async with db.engine.begin() as conn:
                    await conn.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF calls "
                            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
                        )
                    )
                made.append(name)
            except DBAPIError as exc:  # rows for that month already sit in the default partition
                log.warning("could not create call partition %s: %s", name, exc.orig)
        month = following
    return made


async def drop_expired(db: Database, *, cutoff: dt.datetime) -> list[str]:
    """Drop every monthly partition whose month ended before ``cutoff``; the names dropped."""
    dropped: list[str] = []
    for name in await partitions(db):
        match = _NAME.match(name)
        assert match is not None
        month = dt.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=dt.UTC)
        if next_month(month) <= cutoff:
            async with db.engine.begin() as conn:
                await conn.execute(text(f"ALTER TABLE calls DETACH PARTITION {name}"))
                await conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped
