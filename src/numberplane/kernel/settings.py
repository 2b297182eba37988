"""Process settings, read once from the environment (prefix ``NUMBERPLANE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NUMBERPLANE_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./numberplane.db",
        description="SQLAlchemy async URL. SQLite (aiosqlite) by default; PostgreSQL via asyncpg.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL carriers use to reach the routing endpoints (voice webhooks).",
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key (urlsafe base64, 32 bytes) that encrypts secrets at rest. "
        "When unset, a key file next to the SQLite database is created and used.",
    )
    secret_key_file: Path = Field(default=Path("./numberplane.secret"))
    allow_private_urls: bool = Field(
        default=False,
        description="Allow customer webhooks on loopback/private addresses (development and tests only).",
    )
    # Where carrier API traffic goes: the operator's choice only (a tenant never picks it). Unset
    # means the carrier's own API. Set one for a regional edge, an egress proxy or a test double.
    twilio_api_base_url: str | None = Field(
        default=None, description="Twilio REST base URL (default https://api.twilio.com)."
    )
    telnyx_api_base_url: str | None = Field(
        default=None, description="Telnyx API v2 base URL (default https://api.telnyx.com/v2)."
    )
    signalwire_api_base_url: str | None = Field(
        default=None,
        description="SignalWire REST base URL; `{space}` stands for the account's space "
        "(default https://{space}.signalwire.com).",
    )
    vonage_api_base_url: str | None = Field(
        default=None, description="Vonage REST base URL (default https://rest.nexmo.com)."
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body on /v1 and the dialects' APIs (413 beyond, before parsing).",
    )
    max_bulk_body_bytes: int = Field(
        default=67_108_864,
        ge=1024,
        description="Largest body on bulk routes: POST /v1/phone-numbers/import (100,000 rows) and "
        "Freya's bulk update.",
    )
    log_level: str = "INFO"
    telemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry spans and metrics for every request, sent to the "
        "providers OpenTelemetry is configured with. Off by default: when off, no request asks "
        "whether a provider is configured (a cost every request would pay).",
    )
    default_carrier: str = "sandbox"
    idempotency_wait_seconds: float = 10.0
    # An import claimed under an Idempotency-Key whose heartbeat is older than this was cut off
    # (its server died): a retry with the key takes it over.
    import_stale_seconds: float = 60.0
    route_cache_size: int = Field(
        default=200_000,
        ge=0,
        description="Numbers whose routing snapshot each server process keeps in memory (0: no cache).",
    )
    route_unknown_ttl_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a server remembers that a called number is not one of ours. Creating "
        "the number ends it at once, in every process; this bounds it in any case.",
    )
    run_worker_in_process: bool = Field(
        default=True, description="With SQLite, `numberplane serve` also runs the background worker."
    )
    # Webhook delivery and the background worker (numberplane.events.worker; README "Events").
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Total time one webhook delivery attempt may take."
    )
    webhook_retry_base_seconds: float = Field(
        default=10.0, gt=0, description="Delay before the first retry; doubles each attempt (with jitter)."
    )
    webhook_retry_max_delay_seconds: float = Field(
        default=7200.0, gt=0, description="The longest delay between two attempts."
    )
    webhook_retry_window_seconds: float = Field(
        default=86400.0, gt=0, description="How long a delivery is retried before it is marked failed."
    )
    worker_poll_seconds: float = Field(default=1.0, gt=0, description="How often an idle worker looks.")
    worker_batch_size: int = Field(default=100, ge=1, le=10_000, description="Rows per worker step.")
    worker_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a worker holds a delivery; must exceed webhook_timeout_seconds. "
        "A crashed worker's deliveries are picked up again after this.",
    )
    billing_check_seconds: float = Field(
        default=60.0, gt=0, description="How often the worker rolls the billing clock forward."
    )

    # Calls (numberplane.calls) and retention (a worker's periodic job).
    call_records: bool = Field(
        default=True, description="Record every call the data plane answers (false: log and metrics only)."
    )
    call_writer: Literal["auto", "process", "inline"] = Field(
        default="auto",
        description="Where call records are written: 'process', a writer process beside each server "
        "(the answering process keeps its CPU for answers); 'inline', in the server itself; 'auto', "
        "a writer process when the server's workers leave a CPU for it (fewer workers than CPUs). "
        "An in-memory SQLite database is always written inline.",
    )
    call_flush_seconds: float = Field(
        default=0.5, gt=0, le=5, description="How long a call record may wait before it is written."
    )
    call_flush_batch: int = Field(
        default=500, ge=1, le=5000, description="Call records written per batch (sooner when this many wait)."
    )
    call_retention_days: int = Field(default=90, ge=0, description="Days a call record is kept (0: forever).")
    event_retention_days: int = Field(
        default=90,
        ge=0,
        description="Days an event is kept once every delivery of it has finished (0: forever).",
    )
    delivery_retention_days: int = Field(
        default=90, ge=0, description="Days a finished (succeeded or failed) delivery is kept (0: forever)."
    )
    audit_retention_days: int = Field(default=90, ge=0, description="Days an audit row is kept (0: forever).")
    retention_check_seconds: float = Field(
        default=3600.0, gt=0, description="How often the worker prunes rows past their retention."
    )
    test_call_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="Time a test call's request to this server's public URL may take.",
    )

    def carrier_api_base_url(self, carrier: str) -> str | None:
        """The operator's base URL for ``carrier``'s API, if one is set."""
        value = getattr(self, f"{carrier}_api_base_url", None)
        return value.strip().rstrip("/") if isinstance(value, str) and value.strip() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
