"""Peers' dialects: per-task callback endpoints with their own signing scheme, requesters'
feedback on decisions, and per-organisation signing secrets of the dialects.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheme", sa.String(length=32), server_default="standard", nullable=False)
        )
        batch_op.add_column(sa.Column("task_key", sa.String(length=256), nullable=True))
        batch_op.create_index("ix_webhook_endpoints_task", ["org_id", "task_key"], unique=True)

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rating IS NULL OR (rating >= 1 AND rating <= 5)", name=op.f("ck_feedback_rating")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_task", ["org_id", "task_id"], unique=False)

    op.create_table(
        "compat_secrets",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("dialect", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "dialect", name=op.f("pk_compat_secrets")),
    )


def downgrade() -> None:
    op.drop_table("compat_secrets")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_task")
    op.drop_table("feedback")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_task")
        batch_op.drop_column("task_key")
        batch_op.drop_column("scheme")
