"""Schema migrations, applied at start (``handrail migrate`` runs them alone).

Migrations run inside one transaction on the store's own connection; on PostgreSQL an
advisory lock lets several processes start together safely.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, select

from handrail.store.sql import SqlStore

__all__ = ["alembic_config", "current_revision", "migrate"]

_LOCK = 0x68726D67  # "hrmg"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "handrail_server:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(store: SqlStore, revision: str = "head") -> None:
    """Bring the database to ``revision``."""

    def upgrade(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_LOCK)))
        command.upgrade(alembic_config(conn), revision)

    await store.run(upgrade)


async def current_revision(store: SqlStore) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    return await store.run(read, readonly=True)
