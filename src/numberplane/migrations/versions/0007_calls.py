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
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
        return
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
            "carrier_call_id", "org_id", "carrier", name=op.f("uq_calls_carrier_call_id_org_id_carrier")
        ),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_org_id_id", ["org_id", "id"], unique=False)
        batch_op.create_index(
            "ix_calls_org_id_phone_number_id", ["org_id", "phone_number", "id"], unique=False
        )
        batch_op.create_index(
            "ix_calls_phone_number_id_started_at", ["phone_number_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_calls_started_at", ["started_at"], unique=False)


# PostgreSQL: the same columns, range-partitioned by month on started_at (calls.partitions keeps
# next month's partition ready and drops expired ones). A partitioned table's primary key and
# unique keys must include the partition key, so the primary key is (id, started_at) and the
# carrier's call id is an ordinary index: writers serialise per call with advisory locks instead
# (calls.service).
_COLUMNS = """
    id varchar(36) NOT NULL,
    org_id varchar(36) NOT NULL,
    phone_number_id varchar(36),
    phone_number varchar(32),
    from_number varchar(128),
    direction varchar(16) NOT NULL,
    carrier varchar(16) NOT NULL,
    carrier_account_id varchar(36),
    carrier_call_id varchar(128) NOT NULL,
    status varchar(16) NOT NULL,
    outcome varchar(32),
    reason varchar(64),
    agent_id varchar(36),
    agent_version integer,
    webhook json,
    decision_ms double precision,
    trace json,
    sip_code integer,
    started_at timestamptz NOT NULL,
    answered_at timestamptz,
    ended_at timestamptz,
    duration_s integer,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT pk_calls PRIMARY KEY (id, started_at)
"""


def _upgrade_postgresql() -> None:
    import datetime as dt

    op.execute(f"CREATE TABLE calls ({_COLUMNS}) PARTITION BY RANGE (started_at)")
    op.execute("CREATE TABLE calls_default PARTITION OF calls DEFAULT")
    op.execute("CREATE INDEX ix_calls_org_id_id ON calls (org_id, id)")
    op.execute("CREATE INDEX ix_calls_org_id_phone_number_id ON calls (org_id, phone_number, id)")
    # Covering: a number's stats read only this index (an index-only scan), not the rows.
    op.execute(
        "CREATE INDEX ix_calls_phone_number_id_started_at ON calls (phone_number_id, started_at) "
        "INCLUDE (org_id, answered_at, duration_s, outcome, decision_ms)"
    )
    op.execute("CREATE INDEX ix_calls_started_at ON calls (started_at)")
    op.execute(
        "CREATE INDEX ix_calls_carrier_call_id_org_id_carrier ON calls (carrier_call_id, org_id, carrier)"
    )
    now = dt.datetime.now(dt.UTC)
    month = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
    for _ in range(2):  # this month and the next: the worker keeps one month ahead from here on
        following = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=dt.UTC)
        op.execute(
            f"CREATE TABLE calls_p{month:%Y%m} PARTITION OF calls "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
        )
        month = following


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE calls")  # the partitions go with it
        return
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_started_at")
        batch_op.drop_index("ix_calls_phone_number_id_started_at")
        batch_op.drop_index("ix_calls_org_id_phone_number_id")
        batch_op.drop_index("ix_calls_org_id_id")
    op.drop_table("calls")
