"""change_log: how writers on SQLite tell running servers what changed (PostgreSQL uses NOTIFY).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    )
    op.create_index("ix_change_log_created_at", "change_log", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_change_log_created_at", table_name="change_log")
    op.drop_table("change_log")
