"""Counting what a SQL store sends: statements and transactions, per operation.

A count is exact, so tests pin them (a regression that adds a statement fails CI) and the
benchmarks print them beside the timings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from handrail.store.sql import SqlStore


@dataclass
class Sent:
    """What a store sent while counted: each statement's SQL (our own ``BEGIN`` left out),
    and the transactions begun."""

    statements: list[str] = field(default_factory=list)
    transactions: int = 0

    def __len__(self) -> int:
        return len(self.statements)

    def touching(self, table: str) -> list[str]:
        return [s for s in self.statements if f" {table}" in s or f'"{table}"' in s]


def _engine(store: SqlStore) -> Engine:
    engine: Any = store._driver.engine
    return engine.sync_engine if hasattr(engine, "sync_engine") else engine


@contextmanager
def counted(store: SqlStore) -> Iterator[Sent]:
    """Every statement ``store`` sends in the block."""
    sent = Sent()
    engine = _engine(store)

    def statement(conn: Any, cursor: Any, sql: str, *rest: Any) -> None:
        if not sql.startswith("BEGIN"):
            sent.statements.append(" ".join(sql.split()))

    def begun(conn: Any) -> None:
        sent.transactions += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "begin", begun)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "begin", begun)
