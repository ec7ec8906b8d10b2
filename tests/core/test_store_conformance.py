"""The store conformance suite, on every store: memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from handrail.store import MemoryStore, Store
from handrail.store.sql import SqlStore
from handrail.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    async def store(self) -> MemoryStore:
        return MemoryStore()

    @pytest.fixture
    def store_factory(self, store: MemoryStore) -> Callable[[], Awaitable[Store]]:
        async def same() -> Store:
            return store

        return same


class TestSqliteStore(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqlStore]:
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'handrail.db'}")
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(
        self, tmp_path: Path, store: SqlStore
    ) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
        opened: list[SqlStore] = []

        async def another() -> Store:
            handle = await SqlStore.open(f"sqlite:///{tmp_path / 'handrail.db'}")
            opened.append(handle)
            return handle

        yield another
        for handle in opened:
            await handle.close()


def postgres_store(url: str, schema: str) -> Awaitable[SqlStore]:
    return SqlStore.open(url, connect_args={"server_settings": {"search_path": schema}})


@pytest.mark.postgres
class TestPostgresStore(StoreConformance):
    @pytest.fixture
    async def store(self, postgres_url: str, postgres_schema: str) -> AsyncIterator[SqlStore]:
        store = await postgres_store(postgres_url, postgres_schema)
        yield store
        await store.close()

    @pytest.fixture
    async def store_factory(
        self, postgres_url: str, postgres_schema: str, store: SqlStore
    ) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
        opened: list[SqlStore] = []

        async def another() -> Store:
            handle = await postgres_store(postgres_url, postgres_schema)
            opened.append(handle)
            return handle

        yield another
        for handle in opened:
            await handle.close()
