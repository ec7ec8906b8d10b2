"""Webhook endpoints and notification channels move their organisation's configuration
version on (``org_config``, revision 0005), as policies, groups and standing approvals do:
a store may then keep what an organisation subscribed to for as long as that version holds,
instead of probing the two tables at every change. Backfills the organisations that have
endpoints or channels and no ``org_config`` row yet.

Revision ID: 0006_subscribed
Revises: 0005_config
Create Date: 2026-12-07 16:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_subscribed"
down_revision: str | Sequence[str] | None = "0005_config"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("webhook_endpoints", "notify_channels")
BUMP = (
    "INSERT INTO org_config (org_id, version) VALUES ({org}, 1) "
    "ON CONFLICT (org_id) DO UPDATE SET version = org_config.version + 1"
)
SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_config_{op_.lower()} AFTER {op_} ON {table} "
    f"BEGIN {BUMP.format(org=('OLD' if op_ == 'DELETE' else 'NEW') + '.org_id')}; END"
    for table in TABLES
    for op_ in ("INSERT", "UPDATE", "DELETE")
]
POSTGRES = [  # handrail_config_changed() is revision 0005's
    f"CREATE OR REPLACE TRIGGER {table}_config AFTER INSERT OR UPDATE OR DELETE "
    f"ON {table} FOR EACH ROW EXECUTE FUNCTION handrail_config_changed()"
    for table in TABLES
]
BACKFILL = (
    "INSERT INTO org_config (org_id, version) SELECT org_id, 1 FROM ("
    + " UNION ".join(f"SELECT org_id FROM {table}" for table in TABLES)
    + ") AS subscribed WHERE true ON CONFLICT (org_id) DO NOTHING"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE if dialect == "sqlite" else POSTGRES if dialect == "postgresql" else []:
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        if dialect == "sqlite":
            for op_ in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_config_{op_}")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_config ON {table}")
