"""Batches: reviews asked together (the parallel tool calls of one agent turn) share a
``batch_id``, indexed per organisation so reviewers can see them side by side.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:50:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_tasks_batch", ["org_id", "batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_batch")
        batch_op.drop_column("batch_id")
