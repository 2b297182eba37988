"""Webhook endpoints and their deliveries.

Outbox events and audit rows (``kernel.outbox``) are written in the same transaction as the
change. The worker fans each new event out into one ``WebhookDelivery`` per matching endpoint
(marking the event with ``fanned_out_at``), then delivers, retries and records the outcome on
that row.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from numberplane.kernel.db import Base, utcnow

_PENDING = text("status = 'pending'")


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
