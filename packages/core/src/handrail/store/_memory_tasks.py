"""A memory transaction's tasks and history: reads overlay the transaction's own writes on
committed state; the queue, the due lists and a worker's active load."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from .._model_base import detached
from ..audit import event_record
from ..errors import ConcurrencyConflict
from ..lifecycle import EXPIRABLE, Status
from ..models import RISK_RANK, AssignmentStatus, Kind, RiskTier, Task, TaskEvent
from ._memory_base import _TransactionBase
from ._memory_tables import _copy
from ._protocol import TaskQuery

_OPEN_TO_WORK = frozenset({Status.POSTED, Status.ASSIGNED})


def _open_to(task: Task, groups: set[str]) -> bool:
    """Whether a member of ``groups`` may take ``task`` (a review its policy restricts to
    groups needs one of them)."""
    named = task.policy.groups if task.policy is not None else ()
    return not named or not groups.isdisjoint(named)


class _MemoryTasks(_TransactionBase):
    """The tasks and their history, for :class:`~handrail.store.MemoryStore`'s transactions."""

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
        mine = [detached(e) for e in events]  # the caller's may change: the store's do not
        self._events.extend(mine)
        self._audit.extend(event_record(e) for e in mine)

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        with self._store._lock:
            committed = list(self._store._events_by_task.get(task_id, ()))
        return [detached(e) for e in committed if e.org_id == org_id]

    async def org_events(self, org_id: str, after: int, limit: int) -> list[TaskEvent]:
        with self._store._lock:
            tail = self._store._events[after:]  # seq n sits at index n - 1
        return [detached(e) for e in [e for e in tail if e.org_id == org_id][:limit]]

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
            if query.batch_id is not None and t.batch_id != query.batch_id:
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
        task_types: Collection[str] | None = None,
        max_risk: RiskTier | None = None,
        groups: Collection[str] | None = None,
    ) -> list[Task]:
        with self._store._lock:
            ids = list(self._store._open.get(org_id, ()))
            candidates = [self._store._tasks[i] for i in ids]
        allowed = set(groups) if groups is not None else None
        found = [
            t
            for t in candidates
            if t.status in _OPEN_TO_WORK
            and t.open_slots > 0
            and t.expires_at > now
            and (kind is None or t.kind is kind)
            and (task_type is None or t.task_type == task_type)
            and (risk_tier is None or t.risk_tier is risk_tier)
            and (task_types is None or t.task_type in task_types)
            and (max_risk is None or RISK_RANK[t.risk_tier] <= RISK_RANK[max_risk])
            and not (
                exclude_worker is not None
                and (
                    (t.kind is Kind.REVIEW and t.created_by == exclude_worker)
                    or any(
                        a.worker_id == exclude_worker and a.status is not AssignmentStatus.RELEASED
                        for a in t.assignments
                    )
                )
            )
            and (allowed is None or _open_to(t, allowed))
        ]
        found.sort(key=lambda t: (t.expires_at, -RISK_RANK[t.risk_tier], t.id))
        return [_copy(t) for t in found[:limit]]

    def _reached(
        self,
        statuses: frozenset[Status],
        when: Callable[[Task], datetime | None],
        now: datetime,
        limit: int,
    ) -> list[Task]:
        """Tasks in ``statuses`` whose time ``when`` has come, soonest first."""
        with self._store._lock:
            due = [
                (at, t)
                for ids in self._store._open.values()
                for t in (self._store._tasks[i] for i in ids)
                if t.status in statuses and (at := when(t)) is not None and at <= now
            ]
        due.sort(key=lambda pair: (pair[0], pair[1].id))
        return [_copy(t) for _, t in due[:limit]]

    async def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        return self._reached(EXPIRABLE, lambda t: t.expires_at, now, limit)

    async def backup_due(self, now: datetime, limit: int) -> list[Task]:
        return self._reached(_OPEN_TO_WORK, lambda t: t.backup_at, now, limit)

    async def escalation_due(self, now: datetime, limit: int) -> list[Task]:
        return self._reached(
            _OPEN_TO_WORK, lambda t: t.escalate_at if t.open_slots > 0 else None, now, limit
        )

    # ---------------------------------------------------------------- load

    async def active_load(self, org_id: str, worker_id: str) -> int:
        with self._store._lock:
            tasks = {i: self._store._tasks[i] for i in self._store._open.get(org_id, ())}
        tasks.update((t.id, t) for t in self._inserts.values() if t.org_id == org_id)
        tasks.update((t.id, t) for t, _ in self._updates.values() if t.org_id == org_id)
        return sum(1 for t in tasks.values() if t.active_assignment(worker_id) is not None)
