"""Alembic migrations for the whole database: the engine's tables and the server's."""
