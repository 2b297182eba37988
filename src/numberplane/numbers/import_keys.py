"""An import sent with an ``Idempotency-Key`` replays its first report, as a purchase does.

The first request records its fingerprint under the key (``ImportRequest``); a retry with the
same key gets the first report back (``Idempotent-Replayed: true``). A retry while the first is
still running waits for it (bounded); a claim whose heartbeat (renewed after each committed
chunk) is older than ``Settings.import_stale_seconds`` (its server died) is taken over and the
import runs again: rows the first run committed then read ``unchanged`` (``import_retry``).
The same key with a different request is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from numberplane.kernel.db import Actor, Database, as_utc, utcnow
from numberplane.kernel.errors import Conflict, FieldError, ValidationFailed
from numberplane.kernel.ids import new_id
from numberplane.kernel.settings import get_settings
from numberplane.numbers.importing import import_numbers
from numberplane.numbers.models import ImportRequest
from numberplane.numbers.schemas import ImportReport


async def import_numbers_once(
    *,
    db: Database,
    actor: Actor,
    rows: Sequence[Any],
    defaults: dict[str, Any] | None,
    idempotency_key: str,
) -> tuple[ImportReport, bool]:
    """``import_numbers`` under ``idempotency_key``: (report, replayed)."""

    async def run(heartbeat: Callable[[], Awaitable[None]]) -> ImportReport:
        return await import_numbers(db=db, actor=actor, rows=rows, defaults=defaults, heartbeat=heartbeat)

    return await keyed(db=db, actor=actor, key=idempotency_key, rows=rows, defaults=defaults, run=run)


def fingerprint(rows: Sequence[Any], defaults: dict[str, Any] | None) -> str:
    raw = json.dumps({"numbers": list(rows), "defaults": defaults or {}}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


async def keyed(
    *,
    db: Database,
    actor: Actor,
    key: str,
    rows: Sequence[Any],
    defaults: dict[str, Any] | None,
    run: Callable[[Callable[[], Awaitable[None]]], Awaitable[ImportReport]],
) -> tuple[ImportReport, bool]:
    """The import under ``key``: (report, replayed). ``run(heartbeat)`` does the import;
    ``heartbeat`` is awaited after each chunk so the claim stays fresh."""
    assert actor.org_id is not None
    if not 1 <= len(key) <= 255:
        raise ValidationFailed.field("Idempotency-Key", "must be 1 to 255 characters")
    # Hashing 100,000 rows takes a while: off the event loop.
    mine = await asyncio.to_thread(fingerprint, rows, defaults)
    claim_id = await _claim(db, actor.org_id, key, mine)
    if claim_id is None:
        replay = await _replay_or_take_over(db, actor.org_id, key, mine)
        if isinstance(replay, ImportReport):
            return replay, True
        claim_id = replay

    async def heartbeat() -> None:
        async with db.uow(actor) as uow:
            await uow.session.execute(
                update(ImportRequest).where(ImportRequest.id == claim_id).values(updated_at=utcnow())
            )
            await uow.commit()

    try:
        report = await run(heartbeat)
    except BaseException:
        async with db.uow(actor) as uow:  # the key is free for a retry at once
            await uow.session.execute(
                update(ImportRequest).where(ImportRequest.id == claim_id).values(status="abandoned")
            )
            await uow.commit()
        raise
    async with db.uow(actor) as uow:
        await uow.session.execute(
            update(ImportRequest)
            .where(ImportRequest.id == claim_id)
            .values(status="completed", report=report.model_dump(mode="json"), updated_at=utcnow())
        )
        await uow.commit()
    return report, False


async def _claim(db: Database, org_id: str, key: str, mine: str) -> str | None:
    claim_id = new_id()
    try:
        async with db.uow(Actor.system(org_id)) as uow:
            uow.session.add(
                ImportRequest(
                    id=claim_id, org_id=org_id, idempotency_key=key, fingerprint=mine, status="running"
                )
            )
            await uow.commit()
    except IntegrityError:
        return None
    return claim_id


async def _replay_or_take_over(db: Database, org_id: str, key: str, mine: str) -> ImportReport | str:
    """The first report; or, when its run died, the claim (now ours) to run again."""
    deadline = time.monotonic() + get_settings().idempotency_wait_seconds
    while True:
        async with db.session() as session:
            found = await session.scalar(
                select(ImportRequest).where(
                    ImportRequest.org_id == org_id, ImportRequest.idempotency_key == key
                )
            )
        assert found is not None
        if found.fingerprint != mine:
            raise ValidationFailed(
                "this Idempotency-Key was already used with a different import",
                code="idempotency_key_reused",
                errors=[FieldError("Idempotency-Key", "was used with a different request", "reused")],
            )
        if found.status == "completed" and found.report is not None:
            return ImportReport.model_validate(found.report)
        beat = as_utc(found.updated_at) or utcnow()
        stale = dt.timedelta(seconds=get_settings().import_stale_seconds)
        if found.status == "abandoned" or utcnow() - beat > stale:
            async with db.uow(Actor.system(org_id)) as uow:
                taken = await uow.session.execute(
                    update(ImportRequest)
                    .where(ImportRequest.id == found.id, ImportRequest.updated_at == found.updated_at)
                    .values(status="running", updated_at=utcnow())
                )
                await uow.commit()
            if getattr(taken, "rowcount", 0) == 1:
                return found.id
        if time.monotonic() >= deadline:
            raise Conflict(
                "an import with this Idempotency-Key is still running; retry later",
                code="idempotency_key_in_use",
            )
        await asyncio.sleep(0.1)
