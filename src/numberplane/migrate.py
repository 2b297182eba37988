"""Apply migrations programmatically (``numberplane migrate``, the server's first start, tests)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(files("numberplane") / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", "numberplane:migrations")
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str) -> None:
    """Upgrade the database at ``url`` to head. Runs its own event loop: call from sync code."""
    command.upgrade(alembic_config(url), "head")


def upgrade_connection(connection: Connection) -> None:
    """Upgrade over an existing sync connection (used from ``AsyncConnection.run_sync``)."""
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
