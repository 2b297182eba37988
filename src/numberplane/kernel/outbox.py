"""The outbox and the audit trail: recorded in the unit of work that makes the change.

Both are queued on the unit of work and land in its single commit: no event without its
change, no change without its event. Delivery (webhook endpoints, the worker) is the events
package's business; the records are every domain's, so they live in the kernel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, bindparam, column, select, table, text
from sqlalchemy.orm import Mapped, mapped_column

from numberplane.kernel import changes
from numberplane.kernel.db import Base, RawJSON, UnitOfWork, insert_records, insert_rows, utcnow
from numberplane.kernel.ids import new_id, new_ids

EVENT_TYPES = (
    "phone_number.created",
    "phone_number.updated",
    "phone_number.released",
    "phone_number.renewed",
    "phone_number.purchase_failed",
    "agent.created",
    "agent.updated",
    "agent.deleted",
    "import.completed",
    "carrier.drift_detected",
    "call.started",
    "call.completed",
)

_SECRET_KEYS = frozenset(
    {"password", "secret", "token", "auth_token", "api_key", "api_secret", "signing_secret", "credentials"}
)
REDACTED = "[redacted]"
_UNFANNED = text("fanned_out_at IS NULL")


class OutboxEvent(Base):
    """A state change, recorded with the change itself. Delivery state lives elsewhere."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_id_id", "org_id", "id"),
        # The worker's "what is new" query: only events not yet fanned out are in this index.
        Index("ix_events_unfanned", "id", sqlite_where=_UNFANNED, postgresql_where=_UNFANNED),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    type: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set once the worker has created this event's deliveries (NULL: not yet looked at).
    fanned_out_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class AuditEvent(Base):
    """Who changed what, through which API. Append-only: nothing updates these rows; only retention
    (``events.retention``) deletes them, past ``NUMBERPLANE_AUDIT_RETENTION_DAYS``."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_id_id", "org_id", "id"),
        Index("ix_audit_events_org_id_target_type_target_id", "org_id", "target_type", "target_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(254), nullable=True)  # a key id or an email
    via: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# Rows per statement when inserting in bulk: each slice holds the event loop only briefly.
BULK_SLICE = 250


def redact(value: Any) -> Any:
    """A copy with every secret-looking key replaced, for audit rows and logs."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if (k in _SECRET_KEYS or k.endswith(("_password", "_secret", "_token"))) and v
                else (redact(v) if isinstance(v, dict | list) else v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def emit(
    uow: UnitOfWork,
    *,
    type: str,
    org_id: str | None,
    subject_type: str,
    subject_id: str | None,
    data: dict[str, Any],
) -> OutboxEvent:
    """Record an event in ``uow``: delivered to the org's webhook endpoints once it commits."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = OutboxEvent(
        id=new_id(),
        org_id=org_id,
        type=type,
        subject_type=subject_type,
        subject_id=subject_id,
        data=redact(data),
        created_at=utcnow(),
    )
    uow.add_record(event)
    events_written(uow)
    return event


async def emit_many(
    uow: UnitOfWork,
    *,
    type: str,
    org_id: str | None,
    subject_type: str,
    items: list[tuple[str | None, dict[str, Any]]],
) -> None:
    """Record one event per ``(subject_id, data)`` with a single bulk insert (a 1,000-row import
    chunk): the same rows ``emit`` writes, without an ORM object each."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not items:
        return
    now = utcnow()

    def build() -> list[dict[str, Any]]:
        return [
            {
                "id": new_id(),
                "org_id": org_id,
                "type": type,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "data": redact(data),
                "created_at": now,
            }
            for subject_id, data in items
        ]

    # Building (redacting) a thousand events is CPU work: a worker thread, not the event loop.
    # PostgreSQL takes them by COPY, SQLite in multi-row INSERTs on its writer thread.
    rows = await asyncio.to_thread(build) if len(items) > 100 else build()
    await insert_rows(uow.session, OutboxEvent.__table__, rows)
    events_written(uow)


# The webhook endpoints as far as the outbox reads them (who listens for what); the events
# package owns, migrates and writes the table (``events.models.WebhookEndpoint``).
_ENDPOINTS = table(
    "webhook_endpoints",
    column("org_id", String),
    column("event_types", JSON),
    column("enabled", Boolean),
)

# Built once: ``listened`` runs in every batch of call records.
_LISTENERS = select(_ENDPOINTS.c.org_id, _ENDPOINTS.c.event_types).where(
    _ENDPOINTS.c.org_id.in_(bindparam("orgs", expanding=True)), _ENDPOINTS.c.enabled.is_(True)
)


async def listened(
    uow: UnitOfWork, types: Sequence[str], org_ids: Iterable[str | None]
) -> set[tuple[str, str]]:
    """The ``(org_id, type)`` pairs among ``org_ids`` x ``types`` that an enabled webhook endpoint
    takes (an endpoint with no ``event_types`` takes every type), read in ``uow``'s transaction.

    For a writer of events by the thousand (call records): an event nobody listens for is never
    delivered, so it is not written. An endpoint receives the events written after it exists,
    which is what it would receive anyway once the worker has fanned out the earlier ones.
    """
    orgs = sorted({org for org in org_ids if org})
    heard: set[tuple[str, str]] = set()
    for start in range(0, len(orgs), BULK_SLICE):  # a batch's orgs: bounded by the batch
        rows = await uow.session.execute(_LISTENERS, {"orgs": orgs[start : start + BULK_SLICE]})
        for org_id, event_types in rows:
            heard.update((org_id, t) for t in types if not event_types or t in event_types)
    return heard


# The columns ``emit_encoded`` writes, in its tuples' order (fanned_out_at stays NULL).
ENCODED_COLUMNS = ("id", "org_id", "type", "subject_type", "subject_id", "data", "created_at")


async def emit_encoded(
    uow: UnitOfWork, *, type: str, subject_type: str, items: list[tuple[str | None, str | None, RawJSON]]
) -> None:
    """``emit_many`` for a writer of many events of one type whose payloads it encodes itself: one
    ``(org_id, subject_id, data)`` each, ``data`` JSON text that holds no secret-looking key
    (``redact`` would leave it as it is, so it is not walked). Call records write one event per
    call behind the data plane's answers: no dict, no redaction, no encoding per row here."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not items:
        return
    now = utcnow()
    ids = new_ids(len(items))
    records = [
        (ids[index], org_id, type, subject_type, subject_id, data, now)
        for index, (org_id, subject_id, data) in enumerate(items)
    ]
    await insert_records(uow.session, OutboxEvent.__table__, ENCODED_COLUMNS, records)
    events_written(uow)


def events_written(uow: UnitOfWork) -> None:
    """Wake the delivery workers, in every process, when ``uow`` commits. ``emit`` calls it;
    call it yourself after inserting ``OutboxEvent`` rows in bulk (workers poll anyway, this only
    saves the wait)."""
    changes.changed(uow, changes.OUTBOX, ["new"])


def audit(
    uow: UnitOfWork,
    *,
    action: str,
    target_type: str,
    target_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    org_id: str | None = None,
) -> AuditEvent:
    """Record who (``uow.actor``) changed what, through which API, with secrets redacted."""
    actor = uow.actor
    row = AuditEvent(
        id=new_id(),
        org_id=org_id if org_id is not None else actor.org_id,
        actor_type=actor.kind,
        actor_id=actor.id,
        via=actor.via,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        request_id=actor.request_id,
        created_at=utcnow(),
    )
    uow.add_record(row)
    return row


def record_change(
    uow: UnitOfWork,
    *,
    event: str,
    subject_type: str,
    subject_id: str,
    org_id: str | None,
    data: dict[str, Any],
    action: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """A change, recorded in the caller's unit of work: its outbox event and its audit row
    (``action`` defaults to the event's type)."""
    emit(uow, type=event, org_id=org_id, subject_type=subject_type, subject_id=subject_id, data=data)
    audit(
        uow,
        action=action or event,
        target_type=subject_type,
        target_id=subject_id,
        before=before,
        after=after,
        org_id=org_id,
    )
