"""Reading the audit trail: filtered, newest first, keyset-paginated over the UUIDv7 id.

The trail is append-only: nothing here (or anywhere) updates or deletes a row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from numberplane.events.schemas import AuditEventRead
from numberplane.kernel.db import Database, as_utc, utcnow
from numberplane.kernel.errors import NotFound, ValidationFailed
from numberplane.kernel.outbox import AuditEvent
from numberplane.kernel.pagination import Page, check_limit, keyset, page


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    actor_id: str | None = None
    via: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def id_floor(at: dt.datetime) -> str:
    """The smallest UUIDv7 made at or after ``at``: ids order like their creation time."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    ms = max(0, int(at.timestamp() * 1000))
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:12]}-7000-8000-000000000000"


def to_read(row: AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        id=row.id,
        org_id=row.org_id,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        via=row.via,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        before=row.before,
        after=row.after,
        request_id=row.request_id,
        created_at=as_utc(row.created_at) or utcnow(),
    )


async def list_audit_events(
    *,
    db: Database,
    org_id: str,
    filters: AuditFilters,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditEventRead]:
    check_limit(limit)  # before any other check: a bad limit is named first
    if filters.since and filters.until and filters.since >= filters.until:
        raise ValidationFailed.field("until", "must be after since")
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    for column, value in (
        (AuditEvent.action, filters.action),
        (AuditEvent.target_type, filters.target_type),
        (AuditEvent.target_id, filters.target_id),
        (AuditEvent.actor_id, filters.actor_id),
        (AuditEvent.via, filters.via),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AuditEvent.id >= id_floor(filters.since))
    if filters.until is not None:
        query = query.where(AuditEvent.id < id_floor(filters.until))
    query = keyset(query, AuditEvent.id, limit=limit, cursor=cursor)
    async with db.session() as session:
        rows = list(await session.scalars(query))
    return page(rows, limit=limit, read=to_read)


async def get_audit_event(*, db: Database, org_id: str, audit_id: str) -> AuditEventRead:
    async with db.session() as session:
        row = await session.get(AuditEvent, audit_id) if len(audit_id) <= 64 else None
    if row is None or row.org_id != org_id:
        raise NotFound(f"audit event {audit_id} not found", code="audit_event_not_found")
    return to_read(row)
