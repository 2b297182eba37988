"""Call records past ``NUMBERPLANE_CALL_RETENTION_DAYS``: whole monthly partitions dropped on
PostgreSQL (``calls.partitions``, which also prepares next month's), then what is left deleted in
bounded batches (all of it on SQLite).

Each batch is its own short transaction (``batch`` rows through the ``started_at`` index), and
one run does at most ``max_batches``, so pruning never holds a lock for long nor runs unbounded;
what is left waits for the next run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from numberplane.calls import partitions
from numberplane.calls.models import Call
from numberplane.kernel.db import Actor, Database, utcnow


async def prune_calls(
    *, db: Database, days: int, batch: int = 2000, max_batches: int = 500, now: dt.datetime | None = None
) -> int:
    """Delete calls that started more than ``days`` ago (0: keep forever); returns how many."""
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    total = 0
    for _ in range(max_batches):
        async with db.uow(Actor.system()) as uow:
            expired = select(Call.id).where(Call.started_at < cutoff).limit(batch)
            result = await uow.session.execute(delete(Call).where(Call.id.in_(expired)))
            await uow.commit()
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < batch:
            break
        await asyncio.sleep(0)
    return total


@dataclass
class CallRetention:
    deleted: int = 0
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        out = f"{self.deleted} call(s) deleted"
        if self.partitions_created:
            out += f"; call partitions created: {', '.join(self.partitions_created)}"
        if self.partitions_dropped:
            out += f"; call partitions dropped: {', '.join(self.partitions_dropped)}"
        return out


async def retain_calls(*, db: Database, days: int, now: dt.datetime | None = None) -> CallRetention:
    """The retention job's call step: partitions (PostgreSQL), then the bounded deletes."""
    now = now or utcnow()
    out = CallRetention()
    if db.dialect == "postgresql":
        out.partitions_created = await partitions.ensure(db, now=now)
        if days > 0:
            out.partitions_dropped = await partitions.drop_expired(db, cutoff=now - dt.timedelta(days=days))
    out.deleted = await prune_calls(db=db, days=days, now=now)
    return out
