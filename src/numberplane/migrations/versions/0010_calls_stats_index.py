"""calls: a number's stats read only the index on (phone_number_id, started_at), on SQLite too.

On PostgreSQL migration 0007 already made that index covering (INCLUDE org_id, answered_at,
duration_s, outcome, decision_ms), so its stats are an index-only scan and nothing changes there.
On SQLite the index held only its two keys, so every call in the window was looked up in the
table; here it gets the same columns as trailing keys (SQLite has no INCLUDE) and
``calls.reading.stats_select`` becomes a covering-index scan.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = ["phone_number_id", "started_at"]
_COVERED = ["org_id", "answered_at", "duration_s", "outcome", "decision_ms"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    op.drop_index("ix_calls_phone_number_id_started_at", table_name="calls")
    op.create_index("ix_calls_phone_number_id_started_at", "calls", _KEYS + _COVERED)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    op.drop_index("ix_calls_phone_number_id_started_at", table_name="calls")
    op.create_index("ix_calls_phone_number_id_started_at", "calls", _KEYS)
