"""The in-memory reference store.

Transactions are optimistic: reads see committed state (plus the transaction's own writes),
writes are buffered and applied atomically at commit after their versions and idempotency
keys are checked under one lock. Tasks, events and audit entries are copied in and out
(``detached``: their JSON copied, what cannot change shared), so callers can never change
stored state by mutating what they were given. Safe across threads and event loops.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..audit import AuditEntry, AuditHead, AuditRecord, seal
from ..errors import ConcurrencyConflict
from ..ledger._accounts import Account
from ..ledger._model import EntryRecord, Hold, PayoutRecord, Posting, PostingKind, Settlement
from ..lifecycle import EXPIRABLE
from ..models import Task, TaskEvent
from ..money import Currency
from ..policy import Policy, ReviewerGroup, StandingApproval
from ..workers import AnswerSample, WorkerProfile, WorkerStats
from ._memory_audit import _MemoryAudit
from ._memory_governance import _MemoryGovernance
from ._memory_ledger import _MemoryLedger
from ._memory_tables import _Staged, _Table
from ._memory_tasks import _MemoryTasks
from ._memory_workers import _MemoryWorkers
from ._protocol import Change, Store, Transaction

__all__ = ["MemoryStore"]

SAMPLES_KEPT = 10_000  # per task type: far more than any crowd summary reads


class MemoryStore:
    """Tasks and history in process memory: the reference implementation of ``Store``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._events: list[TaskEvent] = []
        self._events_by_task: dict[str, list[TaskEvent]] = {}
        self._open: dict[str, set[str]] = {}  # org -> ids of tasks not yet in a final-ish state
        # the ledger
        self._accounts: dict[str, Account] = {}
        self._balances: dict[str, int] = defaultdict(int)
        self._postings: dict[str, Posting] = {}
        self._entries: dict[str, list[EntryRecord]] = defaultdict(list)
        self._entry_seq = 0
        self._holds: _Table[Hold] = _Table("hold")
        self._settlements: _Table[Settlement] = _Table("settlement")
        self._payouts: _Table[PayoutRecord] = _Table(
            "payout", unique=lambda p: (p.org_id, p.worker_id, p.key)
        )
        self._spend: dict[tuple[str, Currency], list[Posting]] = defaultdict(list)
        # workers
        self._workers: _Table[WorkerProfile] = _Table("worker")
        self._stats: _Table[WorkerStats] = _Table("worker stats")
        self._samples: dict[tuple[str, str], deque[AnswerSample]] = defaultdict(
            lambda: deque(maxlen=SAMPLES_KEPT)
        )
        # policies and authority
        self._policies: dict[str, list[Policy]] = defaultdict(list)
        self._groups: _Table[ReviewerGroup] = _Table("reviewer group")
        self._standing: _Table[StandingApproval] = _Table("standing approval")
        self._tokens: dict[str, tuple[str, str, datetime]] = {}
        # the audit chains
        self._audit: dict[str, list[AuditEntry]] = defaultdict(list)
        self._heads: dict[str, AuditHead] = {}

    def transaction(self, *, readonly: bool = False) -> _MemoryTransaction:
        """A unit of work, used as ``async with``: commits when the block ends normally; an
        exception leaves no trace (nothing is applied before the commit)."""
        return _MemoryTransaction(self, readonly=readonly)

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


class _MemoryTransaction(
    _MemoryTasks, _MemoryLedger, _MemoryWorkers, _MemoryGovernance, _MemoryAudit
):
    """One transaction: each concept's reads and buffered writes come from its mixin
    (``_memory_tasks``, ``_memory_ledger``, ...); ``commit`` checks them all under the
    store's lock, then applies them at once. The transaction is its own context manager
    (``MemoryStore.transaction``)."""

    async def __aenter__(self) -> _MemoryTransaction:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()

    def commit(self) -> None:
        staged = [
            table
            for table in (
                self._holds,
                self._settlements,
                self._payouts,
                self._workers,
                self._stats,
                self._groups,
                self._standing,
            )
            if table.writes
        ]
        if not (
            staged
            or self._inserts
            or self._updates
            or self._events
            or self._postings
            or self._samples
            or self._policies
            or self._tokens
            or self._audit
        ):
            return
        store = self._store
        with store._lock:
            self._check(store, staged)
            self._apply(store, staged)

    def _check(self, store: MemoryStore, staged: list[_Staged[Any]]) -> None:
        """Raise ``ConcurrencyConflict`` if another transaction committed first what this
        one read or claims (call under the store's lock)."""
        if self._postings:
            running: dict[str, int] = {}

            def balance(account_id: str) -> int:
                return running.get(account_id, store._balances.get(account_id, 0))

            for posting in self._postings:  # re-checked: another transaction may have spent
                if posting.id in store._postings:
                    raise ConcurrencyConflict("posting", posting.id)
                self._check_floors(posting, balance)
                for entry in posting.entries:
                    running[entry.account.id] = balance(entry.account.id) + entry.amount
        for table in staged:
            table.check()
        if self._policies:
            first: dict[str, int] = {}
            for org_id, policy in zip(self._policy_orgs, self._policies, strict=True):
                first.setdefault(org_id, policy.version)
            for org_id, version in first.items():  # another transaction may have saved one
                saved = store._policies.get(org_id)
                if version != (saved[-1].version if saved else 0) + 1:
                    raise ConcurrencyConflict("policy", org_id)
        for token_id in self._tokens:
            if token_id in store._tokens:
                raise ConcurrencyConflict("decision token", token_id)
        for task in self._inserts.values():
            key = task.idempotency_key
            if task.id in store._tasks or (key is not None and (task.org_id, key) in store._keys):
                raise ConcurrencyConflict("task", task.id)
        for task, expected in self._updates.values():
            if store._tasks[task.id].version != expected:
                raise ConcurrencyConflict("task", task.id)

    def _apply(self, store: MemoryStore, staged: list[_Staged[Any]]) -> None:
        """Apply every buffered write (call under the store's lock, after ``_check``)."""
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
        for posting in self._postings:
            store._postings[posting.id] = posting
            if posting.kind is PostingKind.RESOLVE and posting.org_id is not None:
                store._spend[(posting.org_id, posting.currency)].append(posting)
            for entry in posting.entries:
                store._entry_seq += 1
                store._accounts.setdefault(entry.account.id, entry.account)
                store._balances[entry.account.id] += entry.amount
                store._entries[entry.account.id].append(
                    EntryRecord(
                        seq=store._entry_seq,
                        posting_id=posting.id,
                        kind=posting.kind,
                        account_id=entry.account.id,
                        amount=entry.amount,
                        created_at=posting.created_at,
                    )
                )
        for table in staged:
            table.apply()
        for sample in self._samples:
            store._samples[(sample.org_id, sample.task_type)].append(sample)
        for org_id, policy in zip(self._policy_orgs, self._policies, strict=True):
            store._policies[org_id].append(policy)
        store._tokens.update(self._tokens)
        if self._audit:
            by_org: dict[str, list[AuditRecord]] = {}
            for record in self._audit:
                by_org.setdefault(record.org_id, []).append(record)
            for org_id, records in by_org.items():
                sealed = seal(records, store._heads.get(org_id))
                store._audit[org_id].extend(sealed)
                store._heads[org_id] = AuditHead(org_id, sealed[-1].seq, sealed[-1].hash)


if TYPE_CHECKING:  # the type checker proves the store keeps the whole contract
    _store: Store = MemoryStore()
    _tx: Transaction = _MemoryTransaction(MemoryStore(), readonly=True)
