"""The session conformance suite in process, on every store: memory, SQLite and
PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from handrail import Engine, Principal, Role
from handrail.ledger import Ledger, LedgerEscrow
from handrail.session import Session
from handrail.store import MemoryStore, Store
from handrail.store.sql import SqlStore
from handrail.testing import SessionConformance
from handrail.tokens import DecisionTokens

ORG = "acme"

DRIFT: dict[str, str] = {}


class Sessions:
    """The ``sessions`` fixture's factory: principals of ``acme`` (and ``rival``)."""

    def __init__(self, engine: Engine, ledger: Ledger) -> None:
        self.engine, self.ledger = engine, ledger
        self.org_id = ORG

    def _open(self, principal_id: str, role: Role, org: str = ORG) -> Session:
        principal = Principal(org_id=org, id=principal_id, roles=frozenset({role}))
        return self.engine.session(principal, self.ledger)

    async def requester(self) -> Session:
        return self._open("acme-agent", Role.REQUESTER)

    async def admin(self) -> Session:
        return self._open("acme-admin", Role.ADMIN)

    async def reviewer(self, name: str) -> Session:
        return self._open(name, Role.REVIEWER)

    async def outsider(self) -> Session:
        return self._open("rival-admin", Role.ADMIN, "rival")


async def _sessions(store: Store) -> AsyncIterator[Sessions]:
    ledger = Ledger(store)
    engine = Engine(
        store, escrow=LedgerEscrow(ledger), tokens=DecisionTokens(secrets.token_bytes(32))
    )
    try:
        yield Sessions(engine, ledger)
    finally:
        await engine.aclose()


class TestMemorySessions(SessionConformance):
    drift: ClassVar[dict[str, str]] = DRIFT

    @pytest.fixture
    async def sessions(self) -> AsyncIterator[Sessions]:
        async for made in _sessions(MemoryStore()):
            yield made


class TestSqliteSessions(SessionConformance):
    drift: ClassVar[dict[str, str]] = DRIFT

    @pytest.fixture
    async def sessions(self, tmp_path: Path) -> AsyncIterator[Sessions]:
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'handrail.db'}")
        async for made in _sessions(store):
            yield made


@pytest.mark.postgres
class TestPostgresSessions(SessionConformance):
    drift: ClassVar[dict[str, str]] = DRIFT

    @pytest.fixture
    async def sessions(self, postgres_url: str, postgres_schema: str) -> AsyncIterator[Sessions]:
        store = await SqlStore.open(
            postgres_url, connect_args={"server_settings": {"search_path": postgres_schema}}
        )
        async for made in _sessions(store):
            yield made
