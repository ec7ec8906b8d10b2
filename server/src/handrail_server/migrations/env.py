"""Alembic environment: runs on the connection ``handrail_server.migrate`` hands it."""

from __future__ import annotations

from alembic import context

from handrail.store.sql import metadata as engine_tables
from handrail_server.tables import metadata as server_tables

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=[engine_tables, server_tables],
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
