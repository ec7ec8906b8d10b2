"""Policies, reviewer groups, standing approvals, spent decision tokens, the audit chains,
and the policy a review was posted under. Also the index the organisation's event stream
reads by (``ix_task_events_org``), which the tables declared but the baseline left out.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)
Stamp = sa.DateTime(timezone=True)

# The guards as they are at this revision (see handrail.store._sql_tables.trigger_statements):
# the audit log, policy versions and spent tokens are append-only, like the history.
NEW_APPEND_ONLY = ("audit_log", "policies", "decision_tokens")
SQLITE_GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op_.lower()} BEFORE {op_} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in NEW_APPEND_ONLY
    for op_ in ("UPDATE", "DELETE")
]
POSTGRES_GUARDS = [
    f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION handrail_append_only()"
    for table in NEW_APPEND_ONLY
]


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_ttl_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("redact", Json, nullable=True))
        batch_op.add_column(sa.Column("policy", Json, nullable=True))
        batch_op.add_column(sa.Column("reviewer_groups", Json, nullable=True))

    op.create_table(
        "policies",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", Json, nullable=False),
        sa.Column("updated_at", Stamp, nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_policies_version")),
        sa.PrimaryKeyConstraint("org_id", "version", name=op.f("pk_policies")),
    )
    op.create_table(
        "reviewer_groups",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("members", Json, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "name", name=op.f("pk_reviewer_groups")),
    )
    op.create_table(
        "standing_approvals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("when_expr", sa.Text(), nullable=True),
        sa.Column("args", Json, nullable=True),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("expires_at", Stamp, nullable=False),
        sa.Column("revoked_at", Stamp, nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(when_expr IS NULL) != (args IS NULL)", name=op.f("ck_standing_approvals_scope")
        ),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_standing_approvals_lifetime")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standing_approvals")),
    )
    with op.batch_alter_table("standing_approvals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_standing_approvals_tool", ["org_id", "tool", "expires_at"], unique=False
        )
    op.create_table(
        "decision_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("spent_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_tokens")),
    )
    op.create_table(
        "audit_log",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_audit_log_seq")),
        sa.PrimaryKeyConstraint("org_id", "seq", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_task", ["org_id", "task_id"], unique=False)
    op.create_table(
        "audit_heads",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_audit_heads")),
    )

    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.create_index("ix_task_events_org", ["org_id", "seq"], unique=False)

    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_GUARDS, "postgresql": POSTGRES_GUARDS}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    """Downgrade schema (the audit chains and policy history go with it)."""
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_index("ix_task_events_org")
    op.drop_table("audit_heads")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_task")
    op.drop_table("audit_log")
    op.drop_table("decision_tokens")
    with op.batch_alter_table("standing_approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_standing_approvals_tool")
    op.drop_table("standing_approvals")
    op.drop_table("reviewer_groups")
    op.drop_table("policies")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("reviewer_groups")
        batch_op.drop_column("policy")
        batch_op.drop_column("redact")
        batch_op.drop_column("answer_ttl_seconds")
