"""The store contract: a unit of work over tasks and their append-only history."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..lifecycle import Status
from ..models import Kind, RiskTier, Task, TaskEvent

__all__ = ["Change", "Store", "TaskQuery", "Transaction"]


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Filters and a cursor for listing one organisation's tasks, in id (creation) order."""

    statuses: frozenset[Status] | None = None
    kind: Kind | None = None
    task_type: str | None = None
    after: str | None = None
    limit: int = 50
    newest_first: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """A committed event, as the change feed reports it."""

    seq: int
    org_id: str
    task_id: str


class Transaction(Protocol):
    """One unit of work. Writes become visible to others only when it commits.

    Tasks are read and written within one organisation; a task of another organisation is
    simply not there.
    """

    async def get_task(self, org_id: str, task_id: str) -> Task | None: ...

    async def find_by_key(self, org_id: str, idempotency_key: str) -> Task | None: ...

    async def insert_task(self, task: Task) -> None:
        """Add a new task. Raises ``ConcurrencyConflict`` when its id, or its idempotency key
        within the organisation, is taken (perhaps by a concurrent transaction)."""
        ...

    async def update_task(self, task: Task, *, expected_version: int) -> None:
        """Replace a task whose stored version is ``expected_version`` with ``task`` (whose
        version must be the next). Raises ``ConcurrencyConflict`` when the stored version
        differs: someone else changed the task first."""
        ...

    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        """Append history. Events are never changed or removed."""
        ...

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        """A task's history, oldest first, with ``seq`` set."""
        ...

    async def list_tasks(self, org_id: str, query: TaskQuery) -> list[Task]:
        """Up to ``query.limit`` tasks matching the filters, after the cursor id."""
        ...

    async def open_tasks(
        self,
        org_id: str,
        *,
        now: datetime,
        exclude_worker: str | None = None,
        kind: Kind | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | None = None,
        limit: int = 50,
    ) -> list[Task]:
        """Tasks a worker could take now: posted or assigned with a free slot, not past due,
        not already held by ``exclude_worker``; soonest deadline first, then higher risk."""
        ...

    async def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        """Tasks of any organisation still open to work whose deadline has passed."""
        ...


class Store(Protocol):
    def transaction(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """A unit of work: commits when the block ends normally, rolls back on an exception."""
        ...

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Committed events with ``seq`` above ``seq``, oldest first: the change feed that
        wakes waiters in other processes."""
        ...

    async def last_seq(self) -> int:
        """The newest committed event's ``seq`` (0 when there is none)."""
        ...

    async def close(self) -> None: ...
