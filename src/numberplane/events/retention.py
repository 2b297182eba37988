"""Events, deliveries and audit rows past their retention: deleted in bounded batches.

* finished deliveries (succeeded or failed) older than ``delivery_days``;
* events older than ``event_days`` that have been fanned out and have no pending delivery (an
  event takes its remaining finished deliveries with it);
* audit rows older than ``audit_days``.

Ids are UUIDv7, so "older than" is "id below the first id of the cutoff millisecond": every
batch is a primary-key range, on any table, with no extra index. Each batch is its own short
transaction; a run does at most ``max_batches`` per kind. 0 days keeps that kind forever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import Select, delete, exists, select

from numberplane.events.models import WebhookDelivery
from numberplane.kernel.db import Actor, Database, epoch_ms, utcnow
from numberplane.kernel.outbox import AuditEvent, OutboxEvent


def id_before(moment: dt.datetime) -> str:
    """The smallest UUIDv7 of ``moment``'s millisecond: every id made earlier sorts below it."""
    h = f"{epoch_ms(moment) & 0xFFFFFFFFFFFF:012x}"
    return f"{h[:8]}-{h[8:12]}-7000-8000-000000000000"


async def _prune(db: Database, model: Any, expired: Select[Any], batch: int, max_batches: int) -> int:
    total = 0
    for _ in range(max_batches):
        async with db.uow(Actor.system()) as uow:
            result = await uow.session.execute(delete(model).where(model.id.in_(expired.limit(batch))))
            await uow.commit()
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < batch:
            break
        await asyncio.sleep(0)
    return total


async def prune_events(
    *,
    db: Database,
    event_days: int,
    delivery_days: int,
    audit_days: int,
    batch: int = 2000,
    max_batches: int = 500,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Delete what is past its retention; returns how many of each kind."""
    now = now or utcnow()
    out = {"deliveries": 0, "events": 0, "audit_events": 0}
    if delivery_days > 0:
        bound = id_before(now - dt.timedelta(days=delivery_days))
        finished = select(WebhookDelivery.id).where(
            WebhookDelivery.id < bound, WebhookDelivery.status.in_(("succeeded", "failed"))
        )
        out["deliveries"] = await _prune(db, WebhookDelivery, finished, batch, max_batches)
    if event_days > 0:
        bound = id_before(now - dt.timedelta(days=event_days))
        pending = exists().where(
            WebhookDelivery.event_id == OutboxEvent.id, WebhookDelivery.status == "pending"
        )
        delivered = select(OutboxEvent.id).where(
            OutboxEvent.id < bound, OutboxEvent.fanned_out_at.is_not(None), ~pending
        )
        out["events"] = await _prune(db, OutboxEvent, delivered, batch, max_batches)
    if audit_days > 0:
        bound = id_before(now - dt.timedelta(days=audit_days))
        old = select(AuditEvent.id).where(AuditEvent.id < bound)
        out["audit_events"] = await _prune(db, AuditEvent, old, batch, max_batches)
    return out
