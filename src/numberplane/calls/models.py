"""The call record: one row per call the data plane answered (or heard about).

A call is keyed by who reported it: ``(org_id, carrier, carrier_call_id)`` (the carrier's call
id, or the SIP platform's ``call_id`` on ``/v1/route`` with ``carrier`` "api"). Decisions and
status callbacks for one call merge into one row, in whatever order they arrive
(``calls.service.merge``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from numberplane.kernel.db import Base, utcnow


class Call(Base):
    """On SQLite as declared here. On PostgreSQL (migration 0007) the table is range-partitioned by
    month on ``started_at``: its primary key is (id, started_at) and the carrier key below is a
    plain index, calls being serialised per key with advisory locks (``calls.service``)."""

    __tablename__ = "calls"
    __table_args__ = (
        # Leading with the call id: a batch finds its calls by ``carrier_call_id IN (...)``.
        UniqueConstraint("carrier_call_id", "org_id", "carrier"),
        Index("ix_calls_org_id_id", "org_id", "id"),
        # The log filtered by the called number (any format, any holder of it), newest first.
        Index("ix_calls_org_id_phone_number_id", "org_id", "phone_number", "id"),
        # A number's stats (calls.reading.stats_select) read only this index: on SQLite every column
        # they read is a trailing key (migration 0010); PostgreSQL INCLUDEs them (migration 0007).
        Index(
            "ix_calls_phone_number_id_started_at",
            "phone_number_id",
            "started_at",
            "org_id",
            "answered_at",
            "duration_s",
            "outcome",
            "decision_ms",
        ),
        Index("ix_calls_started_at", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(36))
    phone_number_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    phone_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    from_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    carrier: Mapped[str] = mapped_column(String(16))
    carrier_account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    carrier_call_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="ringing")
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    agent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    webhook: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    decision_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    trace: Mapped[list[Any] | None] = mapped_column(nullable=True)
    sip_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    duration_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
