"""The configuration version of each organisation (``org_config``), moved on by triggers at
every change of a policy, a reviewer group or a standing approval, so a store reads one
number per new review instead of the whole configuration; and its backfill.

Revision ID: 0005_config
Revises: 0004_notify
Create Date: 2026-12-07 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_config"
down_revision: str | Sequence[str] | None = "0004_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The triggers as they are at this revision (see handrail.store._sql_tables.config_statements).
CONFIGURATION = ("policies", "reviewer_groups", "standing_approvals")
BUMP = (
    "INSERT INTO org_config (org_id, version) VALUES ({org}, 1) "
    "ON CONFLICT (org_id) DO UPDATE SET version = org_config.version + 1"
)
SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_config_{op_.lower()} AFTER {op_} ON {table} "
    f"BEGIN {BUMP.format(org=('OLD' if op_ == 'DELETE' else 'NEW') + '.org_id')}; END"
    for table in CONFIGURATION
    for op_ in ("INSERT", "UPDATE", "DELETE")
]
POSTGRES = [
    "CREATE OR REPLACE FUNCTION handrail_config_changed() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ DECLARE org text; BEGIN "
    "IF TG_OP = 'DELETE' THEN org := OLD.org_id; ELSE org := NEW.org_id; END IF; "
    f"{BUMP.format(org='org')}; RETURN NULL; END $$",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_config AFTER INSERT OR UPDATE OR DELETE "
        f"ON {table} FOR EACH ROW EXECUTE FUNCTION handrail_config_changed()"
        for table in CONFIGURATION
    ),
]
BACKFILL = (
    "INSERT INTO org_config (org_id, version) SELECT org_id, 1 FROM ("
    + " UNION ".join(f"SELECT org_id FROM {table}" for table in CONFIGURATION)
    + ") AS configured WHERE true ON CONFLICT (org_id) DO NOTHING"
)


def upgrade() -> None:
    op.create_table(
        "org_config",
        sa.Column("org_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_org_config_version")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_config")),
    )
    dialect = op.get_bind().dialect.name
    for statement in SQLITE if dialect == "sqlite" else POSTGRES if dialect == "postgresql" else []:
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in CONFIGURATION:
        if dialect == "sqlite":
            for op_ in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_config_{op_}")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_config ON {table}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS handrail_config_changed()")
    op.drop_table("org_config")
