"""calls: one record per call the data plane answered, merged from decisions and status callbacks.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("phone_number_id", sa.String(length=36), nullable=True),
        sa.Column("phone_number", sa.String(length=32), nullable=True),
        sa.Column("from_number", sa.String(length=128), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("carrier", sa.String(length=16), nullable=False),
        sa.Column("carrier_account_id", sa.String(length=36), nullable=True),
        sa.Column("carrier_call_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.String(length=36), nullable=True),
        sa.Column("agent_version", sa.Integer(), nullable=True),
        sa.Column("webhook", sa.JSON(), nullable=True),
        sa.Column("decision_ms", sa.Float(), nullable=True),
        sa.Column("trace", sa.JSON(), nullable=True),
        sa.Column("sip_code", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint(
            "org_id", "carrier", "carrier_call_id", name=op.f("uq_calls_org_id_carrier_carrier_call_id")
        ),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_org_id_id", ["org_id", "id"], unique=False)
        batch_op.create_index(
            "ix_calls_phone_number_id_started_at", ["phone_number_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_calls_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_started_at")
        batch_op.drop_index("ix_calls_phone_number_id_started_at")
        batch_op.drop_index("ix_calls_org_id_id")
    op.drop_table("calls")
