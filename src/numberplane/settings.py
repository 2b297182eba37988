"""Process settings, read once from the environment (prefix ``NUMBERPLANE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    log_level: str = "INFO"
    default_carrier: str = "sandbox"
    idempotency_wait_seconds: float = 10.0
    run_worker_in_process: bool = Field(
        default=True, description="With SQLite, `numberplane serve` also runs the background worker."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
