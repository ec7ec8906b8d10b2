"""PostgreSQL for tests: where it is, whether it answers, and throwaway schemas and
databases."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "HANDRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("HANDRAIL_REQUIRE_POSTGRES") == "1"


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def probe(url: str) -> None:
    conn = await asyncio.wait_for(asyncpg.connect(asyncpg_dsn(url)), 5)
    try:
        await conn.execute("SELECT 1")
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_schema(url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL schema, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        yield name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()


@asynccontextmanager
async def fresh_database(url: str, prefix: str = "handrail_t") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on ``url``'s server (its URL), dropped ``WITH
    (FORCE)`` afterwards: for server processes of their own, which cannot share a schema
    through ``search_path``."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
