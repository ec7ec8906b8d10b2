"""The in-memory reference store.

Transactions are optimistic: reads see committed state (plus the transaction's own writes),
writes are buffered and applied atomically at commit after their versions and idempotency
keys are checked under one lock. Models are deep-copied in and out, so callers can never
change stored state by mutating what they were given. Safe across threads and event loops.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from ..errors import ConcurrencyConflict
from ..lifecycle import EXPIRABLE, Status
from ..models import RISK_RANK, AssignmentStatus, Kind, RiskTier, Task, TaskEvent
from ._protocol import Change, TaskQuery

__all__ = ["MemoryStore"]

_OPEN_TO_WORK = frozenset({Status.POSTED, Status.ASSIGNED})


def _copy(task: Task) -> Task:
    return task.model_copy(deep=True)


class MemoryStore:
    """Tasks and history in process memory: the reference implementation of ``Store``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._events: list[TaskEvent] = []
        self._events_by_task: dict[str, list[TaskEvent]] = {}
        self._open: dict[str, set[str]] = {}  # org -> ids of tasks not yet in a final-ish state

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[_MemoryTransaction]:
        tx = _MemoryTransaction(self, readonly=readonly)
        yield tx
        tx.commit()

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self._lock:
            tail = self._events[seq : seq + limit]  # seq n sits at index n - 1
        return [Change(e.seq or 0, e.org_id, e.task_id) for e in tail]

    async def last_seq(self) -> int:
        with self._lock:
            return len(self._events)

    async def close(self) -> None:
        return None

    # ---- committed-state reads (under the lock) ----

    def _get(self, org_id: str, task_id: str) -> Task | None:
        task = self._tasks.get(task_id)
        return task if task is not None and task.org_id == org_id else None


class _MemoryTransaction:
    def __init__(self, store: MemoryStore, *, readonly: bool) -> None:
        self._store = store
        self._readonly = readonly
        self._inserts: dict[str, Task] = {}
        self._updates: dict[str, tuple[Task, int]] = {}
        self._events: list[TaskEvent] = []

    def _pending(self, task_id: str) -> Task | None:
        if task_id in self._updates:
            return self._updates[task_id][0]
        return self._inserts.get(task_id)

    def _writable(self) -> None:
        if self._readonly:
            raise RuntimeError("write in a read-only transaction")

    async def get_task(self, org_id: str, task_id: str) -> Task | None:
        pending = self._pending(task_id)
        if pending is not None:
            return _copy(pending) if pending.org_id == org_id else None
        with self._store._lock:
            task = self._store._get(org_id, task_id)
        return _copy(task) if task is not None else None

    async def find_by_key(self, org_id: str, idempotency_key: str) -> Task | None:
        for task in self._inserts.values():
            if task.org_id == org_id and task.idempotency_key == idempotency_key:
                return _copy(task)
        with self._store._lock:
            task_id = self._store._keys.get((org_id, idempotency_key))
            found = self._store._tasks.get(task_id) if task_id else None
        return _copy(found) if found is not None else None

    async def insert_task(self, task: Task) -> None:
        self._writable()
        key = task.idempotency_key
        with self._store._lock:
            taken = task.id in self._store._tasks or (
                key is not None and (task.org_id, key) in self._store._keys
            )
        if taken or task.id in self._inserts:
            raise ConcurrencyConflict("task", task.id)
        self._inserts[task.id] = _copy(task)

    async def update_task(self, task: Task, *, expected_version: int) -> None:
        self._writable()
        if task.version != expected_version + 1:
            raise ValueError("a task's version must go up by one per update")
        if task.id in self._inserts:
            self._inserts[task.id] = _copy(task)
            return
        current = await self.get_task(task.org_id, task.id)
        if current is None or current.version != expected_version:
            raise ConcurrencyConflict("task", task.id)
        self._updates[task.id] = (_copy(task), expected_version)

    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        self._writable()
        self._events.extend(events)

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        with self._store._lock:
            committed = list(self._store._events_by_task.get(task_id, ()))
        return [e for e in committed if e.org_id == org_id]

    async def list_tasks(self, org_id: str, query: TaskQuery) -> list[Task]:
        with self._store._lock:
            tasks = [t for t in self._store._tasks.values() if t.org_id == org_id]
        tasks.sort(key=lambda t: t.id, reverse=query.newest_first)
        out: list[Task] = []
        for t in tasks:
            if query.after is not None and (
                t.id >= query.after if query.newest_first else t.id <= query.after
            ):
                continue
            if query.statuses is not None and t.status not in query.statuses:
                continue
            if query.kind is not None and t.kind is not query.kind:
                continue
            if query.task_type is not None and t.task_type != query.task_type:
                continue
            out.append(_copy(t))
            if len(out) >= query.limit:
                break
        return out

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
        with self._store._lock:
            ids = list(self._store._open.get(org_id, ()))
            candidates = [self._store._tasks[i] for i in ids]
        found = [
            t
            for t in candidates
            if t.status in _OPEN_TO_WORK
            and t.open_slots > 0
            and t.expires_at > now
            and (kind is None or t.kind is kind)
            and (task_type is None or t.task_type == task_type)
            and (risk_tier is None or t.risk_tier is risk_tier)
            and not (
                exclude_worker is not None
                and any(
                    a.worker_id == exclude_worker and a.status is not AssignmentStatus.RELEASED
                    for a in t.assignments
                )
            )
        ]
        found.sort(key=lambda t: (t.expires_at, -RISK_RANK[t.risk_tier], t.id))
        return [_copy(t) for t in found[:limit]]

    async def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        with self._store._lock:
            due = [
                t
                for ids in self._store._open.values()
                for t in (self._store._tasks[i] for i in ids)
                if t.status in EXPIRABLE and t.expires_at <= now
            ]
        due.sort(key=lambda t: (t.expires_at, t.id))
        return [_copy(t) for t in due[:limit]]

    def commit(self) -> None:
        if not (self._inserts or self._updates or self._events):
            return
        store = self._store
        with store._lock:
            for task in self._inserts.values():
                key = task.idempotency_key
                if task.id in store._tasks or (
                    key is not None and (task.org_id, key) in store._keys
                ):
                    raise ConcurrencyConflict("task", task.id)
            for task, expected in self._updates.values():
                if store._tasks[task.id].version != expected:
                    raise ConcurrencyConflict("task", task.id)
            for task in (*self._inserts.values(), *(t for t, _ in self._updates.values())):
                store._tasks[task.id] = task
                if task.idempotency_key is not None:
                    store._keys[(task.org_id, task.idempotency_key)] = task.id
                open_ids = store._open.setdefault(task.org_id, set())
                if task.status in EXPIRABLE:
                    open_ids.add(task.id)
                else:
                    open_ids.discard(task.id)
            for event in self._events:
                stored = event.model_copy(update={"seq": len(store._events) + 1})
                store._events.append(stored)
                store._events_by_task.setdefault(event.task_id, []).append(stored)
