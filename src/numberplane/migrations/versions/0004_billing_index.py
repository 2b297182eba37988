"""Billed numbers by next_billed_at: the billing clock's scan is an index range, not a table scan.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BILLED = sa.text("status = 'active' AND origin = 'purchased'")


def upgrade() -> None:
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_phone_numbers_billing",
            ["next_billed_at"],
            unique=False,
            sqlite_where=_BILLED,
            postgresql_where=_BILLED,
        )


def downgrade() -> None:
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_index("ix_phone_numbers_billing")
