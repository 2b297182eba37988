"""The outbox, the audit trail, and webhook endpoints with their deliveries.

Outbox events and audit rows are written in the same transaction as the change. The worker
fans each new event out into one ``WebhookDelivery`` per matching endpoint (marking the event
with ``fanned_out_at``), then delivers, retries and records the outcome on that row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from numberplane.db import Base, utcnow

_UNFANNED = text("fanned_out_at IS NULL")
_PENDING = text("status = 'pending'")


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
    """Who changed what, through which API. Append-only: nothing updates or deletes these rows."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_id_id", "org_id", "id"),
        Index("ix_audit_events_org_id_target_type_target_id", "org_id", "target_type", "target_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    via: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """Where an org wants its events. ``event_types`` empty means every type."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org_id_id", "org_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    event_types: Mapped[list[str]] = mapped_column(default=list)
    # ``whsec_<base64>``, Fernet-encrypted; shown once at creation, never returned again.
    secret_enc: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: attempted until it succeeds or its retry window closes.

    ``status``: pending (due at ``next_attempt_at``), succeeded, failed. A worker holds a row
    while it delivers by setting ``lease_token``/``leased_until``; nobody else picks the row up
    before the lease runs out, so one event never goes to one endpoint twice at the same time.
    ``subject_key`` (``phone_number:<id>``...) orders deliveries: a later event for a subject waits
    while an earlier one for that subject is still pending at the same endpoint.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index(
            "ix_webhook_deliveries_due", "next_attempt_at", sqlite_where=_PENDING, postgresql_where=_PENDING
        ),
        Index(
            "ix_webhook_deliveries_subject_pending",
            "endpoint_id",
            "subject_key",
            "event_id",
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        ),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(36))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    subject_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # A manual resend: delivered on its own, never holding later events for its subject back.
    replay: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retry_until: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    leased_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
