"""Call records past ``NUMBERPLANE_CALL_RETENTION_DAYS``: deleted in bounded batches.

Each batch is its own short transaction (``batch`` rows through the ``started_at`` index), and
one run does at most ``max_batches``, so pruning never holds a lock for long nor runs unbounded;
what is left waits for the next run.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import delete, select

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
