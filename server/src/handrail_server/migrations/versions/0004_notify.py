"""Notifications: channels (email, Slack), reviewers' contacts, the notification outbox and
its attempt log; and the escalation time of reviews (``tasks.escalate_at``).

Revision ID: 0004_notify
Revises: 0004_web
Create Date: 2026-12-09 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_notify"
down_revision: str | Sequence[str] | None = "0004_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalate_at", Stamp, nullable=True))
        batch_op.create_index("ix_tasks_escalate", ["status", "escalate_at"], unique=False)

    op.create_table(
        "notify_channels",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("events", Json, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("signing_secret", sa.String(length=200), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.CheckConstraint("kind IN ('email', 'slack')", name=op.f("ck_notify_channels_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_channels")),
    )
    with op.batch_alter_table("notify_channels", schema=None) as batch_op:
        batch_op.create_index("ix_notify_channels_org", ["org_id", "enabled"], unique=False)

    op.create_table(
        "notify_contacts",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("reviewer_id", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("slack_user_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "reviewer_id", name=op.f("pk_notify_contacts")),
    )
    with op.batch_alter_table("notify_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_notify_contacts_slack", ["org_id", "slack_user_id"], unique=True)

    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Stamp, nullable=False),
        sa.Column("lease_until", Stamp, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("delivered_at", Stamp, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'dead', 'skipped')",
            name=op.f("ck_notify_outbox_state"),
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notify_channels.id"],
            name=op.f("fk_notify_outbox_channel_id_notify_channels"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_outbox")),
    )
    with op.batch_alter_table("notify_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_notify_outbox_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_notify_outbox_task", ["org_id", "task_id"], unique=False)
        batch_op.create_index(
            "ix_notify_outbox_channel", ["channel_id", "created_at"], unique=False
        )

    op.create_table(
        "notify_attempts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("outbox_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["notify_outbox.id"],
            name=op.f("fk_notify_attempts_outbox_id_notify_outbox"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_attempts")),
    )
    with op.batch_alter_table("notify_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_notify_attempts_outbox", ["outbox_id", "at"], unique=False)
        batch_op.create_index("ix_notify_attempts_org", ["org_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("notify_attempts")
    op.drop_table("notify_outbox")
    op.drop_table("notify_contacts")
    op.drop_table("notify_channels")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_escalate")
        batch_op.drop_column("escalate_at")
