"""Phone numbers, their agent bindings, and purchase orders.

Columns that APIs filter or route on are real columns; structured settings that are read and
written whole (voice, handlers, SIP) are JSON, so every vendor's fields fit without a schema
change. ``extras`` holds per-vendor settable values with no core meaning, keyed by dialect.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from numberplane.kernel.db import Base, epoch_ms, utcnow

# A number in one of these states holds its E.164 in the whole system: one org, one row.
HOLDING_STATUSES = ("pending", "active", "releasing")
STATUSES = ("pending", "active", "releasing", "released", "failed")
_HOLDING_SQL = text("status IN ('pending', 'active', 'releasing')")
_BILLED_SQL = text("status = 'active' AND origin = 'purchased'")


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"
    __table_args__ = (
        Index(
            "uq_phone_numbers_holding",
            "phone_number",
            unique=True,
            sqlite_where=_HOLDING_SQL,
            postgresql_where=_HOLDING_SQL,
        ),
        Index("ix_phone_numbers_org_id_id", "org_id", "id"),
        Index(
            "ix_phone_numbers_org_live",
            "org_id",
            "id",
            sqlite_where=_HOLDING_SQL,
            postgresql_where=_HOLDING_SQL,
        ),
        Index("ix_phone_numbers_phone_number", "phone_number"),
        Index(
            "ix_phone_numbers_billing",
            "next_billed_at",
            sqlite_where=_BILLED_SQL,
            postgresql_where=_BILLED_SQL,
        ),
        Index("ix_phone_numbers_carrier_account_id", "carrier_account_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    area_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    number_type: Mapped[str] = mapped_column(String(16), default="local")
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    origin: Mapped[str] = mapped_column(String(16), default="purchased")

    carrier: Mapped[str] = mapped_column(String(20), default="sandbox")
    carrier_account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    carrier_number_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    carrier_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    carrier_sync: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)

    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    voice: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)

    inbound_webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    inbound_webhook_timeout_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    inbound_webhook_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    inbound_sms_webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    fallback: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    call_handler: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    message_handler: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    sip_inbound: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    sip_outbound: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Write-only SIP passwords, Fernet-encrypted; never returned.
    sip_inbound_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    sip_outbound_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)

    outbound: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_caller_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    callback_forwarding_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    allowed_inbound_countries: Mapped[list[str] | None] = mapped_column(nullable=True)
    allowed_outbound_countries: Mapped[list[str] | None] = mapped_column(nullable=True)
    emergency_address_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    emergency_status: Mapped[str | None] = mapped_column(String(24), nullable=True)

    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    extras: Mapped[dict[str, Any]] = mapped_column(default=dict)

    next_billed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    released_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_modification_ms: Mapped[int] = mapped_column(default=epoch_ms)

    def touch(self) -> None:
        self.updated_at = utcnow()
        self.last_modification_ms = epoch_ms(self.updated_at)


class PhoneNumberAgent(Base):
    """One weighted agent binding. ``version`` NULL follows the agent's latest version."""

    __tablename__ = "phone_number_agents"
    __table_args__ = (Index("ix_phone_number_agents_agent_id", "agent_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone_number_id: Mapped[str] = mapped_column(
        ForeignKey("phone_numbers.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(16))  # inbound | outbound | inbound_sms | outbound_sms
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Order(Base):
    """A durable purchase order: recorded before the carrier is called, resolved after.

    ``status``: pending (carrier not yet called, or outcome unknown), completed, failed.
    ``carrier_reference`` is what we hand the carrier (our order id) so a lost response can be
    found again by asking the carrier instead of buying twice.
    """

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("org_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    stage: Mapped[str] = mapped_column(String(24), default="created")
    phone_number_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    phone_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    carrier: Mapped[str] = mapped_column(String(20))
    carrier_account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    carrier_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ImportRequest(Base):
    """An import sent with an ``Idempotency-Key``: what it asked (a fingerprint) and, once done,
    its report, so a retry with the same key gets the first answer instead of a second import.
    ``updated_at`` is the running import's heartbeat: a claim nobody renews (its server was
    killed) is taken over by the retry."""

    __tablename__ = "import_requests"
    __table_args__ = (UniqueConstraint("org_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    report: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
