"""The in-memory reference store.

Transactions are optimistic: reads see committed state (plus the transaction's own writes),
writes are buffered and applied atomically at commit after their versions and idempotency
keys are checked under one lock. Models are deep-copied in and out, so callers can never
change stored state by mutating what they were given. Safe across threads and event loops.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..audit import AuditEntry, AuditHead, AuditRecord, event_record, posting_record, seal
from ..errors import ConcurrencyConflict, InsufficientFunds
from ..ledger._accounts import Account, AccountKind
from ..ledger._model import (
    EntryRecord,
    Hold,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    Settlement,
    SettlementStatus,
)
from ..lifecycle import EXPIRABLE, Status
from ..models import RISK_RANK, AssignmentStatus, Kind, RiskTier, Task, TaskEvent
from ..money import Currency
from ..policy import Policy, ReviewerGroup, StandingApproval
from ..workers import AnswerSample, WorkerProfile, WorkerStats
from ._protocol import Change, PolicyContext, Store, TaskQuery, Transaction

__all__ = ["MemoryStore"]

_OPEN_TO_WORK = frozenset({Status.POSTED, Status.ASSIGNED})
SAMPLES_KEPT = 10_000  # per task type: far more than any crowd summary reads


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


R = TypeVar("R", bound=_Versioned)


class _Table(Generic[R]):
    """Committed records by key, with optimistic versions (the store's lock guards it). A
    staged ``None`` deletes the record stored at the expected version."""

    def __init__(self, name: str, unique: Callable[[R], Hashable] | None = None) -> None:
        self.name = name
        self.rows: dict[str, R] = {}
        self._unique = unique
        self._by_unique: dict[Hashable, str] = {}

    def by_unique(self, value: Hashable) -> R | None:
        key = self._by_unique.get(value)
        return self.rows.get(key) if key is not None else None

    def check(self, key: str, record: R | None, expected: int | None) -> None:
        current = self.rows.get(key)
        if record is None:
            if current is None or current.version != expected:
                raise ConcurrencyConflict(self.name, key)
            return
        if expected is None:
            clash = self._unique is not None and self._unique(record) in self._by_unique
            if current is not None or clash:
                raise ConcurrencyConflict(self.name, key)
        elif current is None or current.version != expected:
            raise ConcurrencyConflict(self.name, key)

    def apply(self, key: str, record: R | None) -> None:
        if record is None:
            gone = self.rows.pop(key, None)
            if gone is not None and self._unique is not None:
                self._by_unique.pop(self._unique(gone), None)
            return
        self.rows[key] = record
        if self._unique is not None:
            self._by_unique[self._unique(record)] = key


class _Staged(Generic[R]):
    """A transaction's pending writes to one ``_Table``."""

    def __init__(self, table: _Table[R]) -> None:
        self.table = table
        self.writes: dict[str, tuple[R | None, int | None]] = {}

    def get(self, key: str, committed: R | None) -> R | None:
        return self.writes[key][0] if key in self.writes else committed

    def delete(self, key: str, expected: int) -> None:
        staged = self.writes.get(key)
        if staged is not None:
            previous, first_expected = staged
            if previous is None or previous.version != expected:
                raise ConcurrencyConflict(self.table.name, key)
            if first_expected is None:  # inserted in this transaction: never happened
                del self.writes[key]
            else:
                self.writes[key] = (None, first_expected)
            return
        self.table.check(key, None, expected)
        self.writes[key] = (None, expected)

    def put(self, key: str, record: R, expected: int | None) -> None:
        if expected is not None and record.version != expected + 1:
            raise ValueError(f"a {self.table.name}'s version must go up by one per update")
        staged = self.writes.get(key)
        if staged is not None:  # written earlier in this transaction: chain onto that
            previous, first_expected = staged
            if previous is None:  # deleted earlier: an insert starts afresh
                if expected is not None:
                    raise ConcurrencyConflict(self.table.name, key)
                self.writes[key] = (record, first_expected)
                return
            if expected is None or previous.version != expected:
                raise ConcurrencyConflict(self.table.name, key)
            self.writes[key] = (record, first_expected)
            return
        self.table.check(key, record, expected)
        self.writes[key] = (record, expected)

    def records(self) -> list[R]:
        """Committed records overlaid with this transaction's writes."""
        merged: dict[str, R | None] = dict(self.table.rows)
        merged.update((k, r) for k, (r, _) in self.writes.items())
        return [r for r in merged.values() if r is not None]

    def check(self) -> None:
        for key, (record, expected) in self.writes.items():
            self.table.check(key, record, expected)

    def apply(self) -> None:
        for key, (record, _) in self.writes.items():
            self.table.apply(key, record)


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


def _key(*parts: str) -> str:
    return "\x00".join(parts)


def _open_to(task: Task, groups: set[str]) -> bool:
    """Whether a member of ``groups`` may take ``task`` (a review its policy restricts to
    groups needs one of them)."""
    named = task.policy.groups if task.policy is not None else ()
    return not named or not groups.isdisjoint(named)


class _MemoryTransaction:
    def __init__(self, store: MemoryStore, *, readonly: bool) -> None:
        self._store = store
        self._readonly = readonly
        self._inserts: dict[str, Task] = {}
        self._updates: dict[str, tuple[Task, int]] = {}
        self._events: list[TaskEvent] = []
        self._postings: list[Posting] = []
        self._deltas: dict[str, int] = defaultdict(int)
        self._accounts: dict[str, Account] = {}
        self._holds = _Staged(store._holds)
        self._settlements = _Staged(store._settlements)
        self._payouts = _Staged(store._payouts)
        self._workers = _Staged(store._workers)
        self._stats = _Staged(store._stats)
        self._samples: list[AnswerSample] = []
        self._policies: list[Policy] = []
        self._policy_orgs: list[str] = []
        self._groups = _Staged(store._groups)
        self._standing = _Staged(store._standing)
        self._tokens: dict[str, tuple[str, str, datetime]] = {}
        self._audit: list[AuditRecord] = []

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
        self._audit.extend(event_record(e) for e in events)

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        with self._store._lock:
            committed = list(self._store._events_by_task.get(task_id, ()))
        return [e for e in committed if e.org_id == org_id]

    async def org_events(self, org_id: str, after: int, limit: int) -> list[TaskEvent]:
        with self._store._lock:
            tail = self._store._events[after:]  # seq n sits at index n - 1
        return [e for e in tail if e.org_id == org_id][:limit]

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

    # ---------------------------------------------------------------- the ledger

    def _balance(self, account_id: str) -> int:  # call under the store's lock
        return self._store._balances.get(account_id, 0) + self._deltas.get(account_id, 0)

    def _check_floors(self, posting: Posting, balance: Callable[[str], int]) -> None:
        moves: dict[str, int] = defaultdict(int)
        accounts: dict[str, Account] = {}
        for entry in posting.entries:
            moves[entry.account.id] += entry.amount
            accounts[entry.account.id] = entry.account
        for account_id, amount in moves.items():
            current = balance(account_id)
            if accounts[account_id].floored and current + amount < 0:
                raise InsufficientFunds(account_id, posting.currency.value, -amount, current)

    async def find_posting(self, posting_id: str) -> Posting | None:
        for posting in self._postings:
            if posting.id == posting_id:
                return posting
        with self._store._lock:
            return self._store._postings.get(posting_id)

    async def post(self, posting: Posting) -> None:
        self._writable()
        if await self.find_posting(posting.id) is not None:
            raise ConcurrencyConflict("posting", posting.id)
        with self._store._lock:
            self._check_floors(posting, self._balance)
        for entry in posting.entries:
            self._deltas[entry.account.id] += entry.amount
            self._accounts[entry.account.id] = entry.account
        self._postings.append(posting)
        self._audit.append(posting_record(posting))

    async def balances(self, account_ids: Sequence[str]) -> dict[str, int]:
        with self._store._lock:
            return {a: self._balance(a) for a in account_ids}

    async def sum_balances(
        self, org_id: str, kind: AccountKind, currency: Currency, owner: str | None = None
    ) -> int:
        with self._store._lock:
            accounts = {**self._store._accounts, **self._accounts}
            return sum(
                self._balance(a.id)
                for a in accounts.values()
                if a.org_id == org_id
                and a.kind is kind
                and a.currency is currency
                and (owner is None or a.owner == owner)
            )

    async def spend_since(self, org_id: str, currency: Currency, since: datetime) -> int:
        with self._store._lock:
            committed = list(self._store._spend.get((org_id, currency), ()))
        staged = [p for p in self._postings if p.kind is PostingKind.RESOLVE]
        return sum(
            p.volume
            for p in committed + staged
            if p.org_id == org_id and p.currency is currency and p.created_at >= since
        )

    async def list_entries(
        self, account_id: str, after: int | None, limit: int
    ) -> list[EntryRecord]:
        with self._store._lock:
            entries = list(self._store._entries.get(account_id, ()))
        return [e for e in entries if after is None or e.seq > after][:limit]

    async def get_hold(self, task_id: str) -> Hold | None:
        with self._store._lock:
            return self._holds.get(task_id, self._store._holds.rows.get(task_id))

    async def put_hold(self, hold: Hold, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._holds.put(hold.task_id, hold, expected_version)

    async def settlements_for_task(self, task_id: str) -> list[Settlement]:
        with self._store._lock:
            found = [s for s in self._settlements.records() if s.task_id == task_id]
        return sorted(found, key=lambda s: s.id)

    async def due_settlements(self, now: datetime, limit: int) -> list[Settlement]:
        with self._store._lock:
            due = [
                s
                for s in self._settlements.records()
                if s.status is SettlementStatus.PENDING and s.due_at <= now
            ]
        return sorted(due, key=lambda s: (s.due_at, s.id))[:limit]

    async def put_settlement(self, settlement: Settlement, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._settlements.put(settlement.id, settlement, expected_version)

    async def find_payout(self, org_id: str, worker_id: str, key: str) -> PayoutRecord | None:
        with self._store._lock:
            for p in self._payouts.records():
                if (p.org_id, p.worker_id, p.key) == (org_id, worker_id, key):
                    return p
        return None

    async def payouts_of(self, org_id: str, worker_id: str) -> list[PayoutRecord]:
        with self._store._lock:
            mine = [
                p for p in self._payouts.records() if (p.org_id, p.worker_id) == (org_id, worker_id)
            ]
        return sorted(mine, key=lambda p: p.id)

    async def pending_payouts(self, limit: int) -> list[PayoutRecord]:
        with self._store._lock:
            pending = [p for p in self._payouts.records() if p.status is PayoutStatus.PENDING]
        return sorted(pending, key=lambda p: p.id)[:limit]

    async def put_payout(self, payout: PayoutRecord, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._payouts.put(payout.id, payout, expected_version)

    async def ledger_totals(self) -> dict[Currency, int]:
        with self._store._lock:
            accounts = {**self._store._accounts, **self._accounts}
            totals: dict[Currency, int] = defaultdict(int)
            for account in accounts.values():
                totals[account.currency] += self._balance(account.id)
        return dict(totals)

    # ---------------------------------------------------------------- workers

    async def get_worker(self, org_id: str, worker_id: str) -> WorkerProfile | None:
        key = _key(org_id, worker_id)
        with self._store._lock:
            return self._workers.get(key, self._store._workers.rows.get(key))

    async def put_worker(self, worker: WorkerProfile, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._workers.put(_key(worker.org_id, worker.id), worker, expected_version)

    async def list_workers(self, org_id: str) -> list[WorkerProfile]:
        with self._store._lock:
            found = [w for w in self._workers.records() if w.org_id == org_id]
        return sorted(found, key=lambda w: w.id)

    async def worker_stats(
        self, org_id: str, task_type: str, worker_ids: Sequence[str]
    ) -> dict[str, WorkerStats]:
        with self._store._lock:
            found = {}
            for worker in worker_ids:
                key = _key(org_id, task_type, worker)
                record = self._stats.get(key, self._store._stats.rows.get(key))
                if record is not None:
                    found[worker] = record
        return found

    async def put_worker_stats(self, stats: WorkerStats, *, expected_version: int | None) -> None:
        self._writable()
        key = _key(stats.org_id, stats.task_type, stats.worker_id)
        with self._store._lock:
            self._stats.put(key, stats, expected_version)

    async def stats_of_worker(self, org_id: str, worker_id: str) -> list[WorkerStats]:
        with self._store._lock:
            mine = [
                r for r in self._stats.records() if (r.org_id, r.worker_id) == (org_id, worker_id)
            ]
        return sorted(mine, key=lambda r: r.task_type)

    async def add_samples(self, samples: Sequence[AnswerSample]) -> None:
        self._writable()
        self._samples.extend(samples)

    async def crowd_stats(
        self, org_id: str, task_type: str, *, durations: int = 200, labels: int = 1000
    ) -> WorkerStats:
        mine = [s for s in self._samples if (s.org_id, s.task_type) == (org_id, task_type)]
        with self._store._lock:
            kept = self._store._samples.get((org_id, task_type), deque())
            newest = [*reversed(mine), *reversed(kept)]  # newest first, stopping early below
            timed = list(
                itertools.islice((s.seconds for s in newest if s.seconds is not None), durations)
            )
        window = newest[:labels]
        counts: dict[str, int] = defaultdict(int)
        for sample in window:
            if sample.label is not None:
                counts[sample.label] += 1
        return WorkerStats(
            org_id=org_id,
            worker_id="*",
            task_type=task_type,
            answers=len(window),
            durations=tuple(reversed(timed)),
            labels=dict(counts),
        )

    # ---------------------------------------------------------------- policies, authority

    def _latest_policy(self, org_id: str) -> Policy | None:  # call under the store's lock
        mine = [p for o, p in zip(self._policy_orgs, self._policies, strict=True) if o == org_id]
        if mine:
            return mine[-1]
        saved = self._store._policies.get(org_id)
        return saved[-1] if saved else None

    async def get_policy(self, org_id: str) -> Policy | None:
        with self._store._lock:
            return self._latest_policy(org_id)

    async def put_policy(self, org_id: str, policy: Policy) -> None:
        self._writable()
        with self._store._lock:
            current = self._latest_policy(org_id)
        if policy.version != (current.version + 1 if current else 1):
            raise ConcurrencyConflict("policy", org_id)
        self._policy_orgs.append(org_id)
        self._policies.append(policy)

    async def policy_context(
        self, org_id: str, tool: str, now: datetime, *, known_version: int | None = None
    ) -> PolicyContext:
        policy = await self.get_policy(org_id)
        version = policy.version if policy is not None else 0
        return PolicyContext(
            version=version,
            policy=None if version == known_version else policy,
            groups=await self.list_groups(org_id),
            standing=await self.list_standing(org_id, tool=tool, active_at=now),
        )

    async def list_groups(self, org_id: str) -> list[ReviewerGroup]:
        with self._store._lock:
            found = [g for g in self._groups.records() if g.org_id == org_id]
        return sorted(found, key=lambda g: g.name)

    async def put_group(self, group: ReviewerGroup, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._groups.put(_key(group.org_id, group.name), group, expected_version)

    async def delete_group(self, org_id: str, name: str, *, expected_version: int) -> None:
        self._writable()
        with self._store._lock:
            self._groups.delete(_key(org_id, name), expected_version)

    async def get_standing(self, org_id: str, approval_id: str) -> StandingApproval | None:
        with self._store._lock:
            found = self._standing.get(approval_id, self._store._standing.rows.get(approval_id))
        return found if found is not None and found.org_id == org_id else None

    async def list_standing(
        self, org_id: str, *, tool: str | None = None, active_at: datetime | None = None
    ) -> list[StandingApproval]:
        with self._store._lock:
            found = [
                a
                for a in self._standing.records()
                if a.org_id == org_id
                and (tool is None or a.tool == tool)
                and (active_at is None or a.active(active_at))
            ]
        return sorted(found, key=lambda a: a.id)

    async def put_standing(
        self, approval: StandingApproval, *, expected_version: int | None
    ) -> None:
        self._writable()
        with self._store._lock:
            self._standing.put(approval.id, approval, expected_version)

    async def token_spent(self, token_id: str) -> bool:
        with self._store._lock:
            return token_id in self._tokens or token_id in self._store._tokens

    async def spend_token(self, org_id: str, token_id: str, task_id: str, at: datetime) -> None:
        self._writable()
        if await self.token_spent(token_id):
            raise ConcurrencyConflict("decision token", token_id)
        self._tokens[token_id] = (org_id, task_id, at)

    # ---------------------------------------------------------------- the audit chains

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        self._writable()
        self._audit.extend(records)

    async def audit_entries(self, org_id: str, after: int, limit: int) -> list[AuditEntry]:
        with self._store._lock:
            chain = self._store._audit.get(org_id, [])
            return chain[max(after, 0) : max(after, 0) + limit]  # seq n sits at index n - 1

    async def audit_head(self, org_id: str) -> AuditHead | None:
        with self._store._lock:
            return self._store._heads.get(org_id)

    async def audit_orgs(self) -> list[str]:
        with self._store._lock:
            return sorted(self._store._heads)

    # ---------------------------------------------------------------- load

    async def active_load(self, org_id: str, worker_id: str) -> int:
        with self._store._lock:
            tasks = {i: self._store._tasks[i] for i in self._store._open.get(org_id, ())}
        tasks.update((t.id, t) for t in self._inserts.values() if t.org_id == org_id)
        tasks.update((t.id, t) for t, _ in self._updates.values() if t.org_id == org_id)
        return sum(1 for t in tasks.values() if t.active_assignment(worker_id) is not None)

    # ---------------------------------------------------------------- commit

    def commit(self) -> None:
        staged = (
            self._holds,
            self._settlements,
            self._payouts,
            self._workers,
            self._stats,
            self._groups,
            self._standing,
        )
        pending = (
            self._inserts,
            self._updates,
            self._events,
            self._postings,
            self._samples,
            self._policies,
            self._tokens,
            self._audit,
        )
        if not any(pending) and not any(t.writes for t in staged):
            return
        store = self._store
        with store._lock:
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
            by_org: dict[str, list[AuditRecord]] = defaultdict(list)
            for record in self._audit:
                by_org[record.org_id].append(record)
            for org_id, records in by_org.items():
                sealed = seal(records, store._heads.get(org_id))
                store._audit[org_id].extend(sealed)
                store._heads[org_id] = AuditHead(org_id, sealed[-1].seq, sealed[-1].hash)


if TYPE_CHECKING:  # the type checker proves the store keeps the whole contract
    _store: Store = MemoryStore()
    _tx: Transaction = _MemoryTransaction(MemoryStore(), readonly=True)
