"""Carrier accounts: an org's own credentials, or platform-wide ones (org_id NULL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from numberplane.kernel.db import Base, utcnow


class CarrierAccount(Base):
    """``credentials_enc`` is Fernet-encrypted JSON (tokens, secrets, signing keys); ``config`` is public.

    config holds what is safe to show: account_sid / space / project_id / connection_id /
    texml_application_id / api_base_url / public_key.
    """

    __tablename__ = "carrier_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("orgs.id", ondelete="CASCADE"), index=True, nullable=True
    )
    carrier: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_enc: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SandboxNumber(Base):
    """The sandbox carrier's own books: which fictional numbers it has sold, and to which account.

    This is the carrier's state, not Numberplane's; it is written in its own transaction, as a
    real carrier's would be, so the purchase-safety logic is exercised the same way.
    """

    __tablename__ = "sandbox_numbers"

    phone_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    carrier_number_id: Mapped[str] = mapped_column(String(40), unique=True)
    account_id: Mapped[str] = mapped_column(String(36), index=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    friendly_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    voice_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    voice_fallback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    sms_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
