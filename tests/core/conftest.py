"""Core test fixtures: ``store``, a fresh SQL store on a SQLite file and on a PostgreSQL
schema of its own (a module that means another kind of store defines its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handrail.store.sql import SqlStore
from tests.postgres import fresh_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'store.db'}")
        yield store
        await store.close()
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_schema(url) as schema:
        store = await SqlStore.open(url, connect_args={"server_settings": {"search_path": schema}})
        yield store
        await store.close()
