"""An agent's deletion takes the bindings of released numbers with it (ON DELETE CASCADE).

Live numbers' bindings never reach the database's cascade: deleting an agent that live numbers
use is refused first (409, naming them).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_phone_number_agents_agent_id_agents"


def upgrade() -> None:
    with op.batch_alter_table("phone_number_agents", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")
        batch_op.create_foreign_key(FK, "agents", ["agent_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("phone_number_agents", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")
        batch_op.create_foreign_key(FK, "agents", ["agent_id"], ["id"])
