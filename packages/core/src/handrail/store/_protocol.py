"""The store contract: a unit of work over tasks and their append-only history."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..audit import AuditEntry, AuditHead, AuditRecord
from ..ledger._accounts import AccountKind
from ..ledger._model import EntryRecord, Hold, PayoutRecord, Posting, Settlement
from ..lifecycle import Status
from ..models import Kind, RiskTier, Task, TaskEvent
from ..money import Currency
from ..policy import Policy, ReviewerGroup, StandingApproval
from ..workers import AnswerSample, WorkerProfile, WorkerStats

__all__ = [
    "AuditTransaction",
    "Change",
    "GovernanceTransaction",
    "LedgerTransaction",
    "PolicyContext",
    "Store",
    "TaskQuery",
    "TaskTransaction",
    "Transaction",
    "WorkerTransaction",
]


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Filters and a cursor for listing one organisation's tasks, in id (creation) order."""

    statuses: frozenset[Status] | None = None
    kind: Kind | None = None
    task_type: str | None = None
    batch_id: str | None = None
    after: str | None = None
    limit: int = 50
    newest_first: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """A committed event, as the change feed reports it."""

    seq: int
    org_id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a new review is judged by, read in one step: the organisation's newest policy
    ``version`` (0: none saved) and that ``policy`` (None when there is none, or when the
    caller already holds that version), its reviewer groups, and the live standing
    approvals for the tool."""

    version: int
    policy: Policy | None
    groups: list[ReviewerGroup]
    standing: list[StandingApproval]


class TaskTransaction(Protocol):
    """Tasks and their history, within one unit of work.

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
        """Append history, and each event to its organisation's audit chain. Events are
        never changed or removed."""
        ...

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        """A task's history, oldest first, with ``seq`` set."""
        ...

    async def org_events(self, org_id: str, after: int, limit: int) -> list[TaskEvent]:
        """The organisation's history across its tasks, ``seq`` above ``after``, oldest
        first: what an event stream resumes from. An organisation's events become visible
        in the order of their ``seq`` (none can appear later below a ``seq`` already seen),
        so a reader that follows ``seq`` never passes one by."""
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
        task_types: Collection[str] | None = None,
        max_risk: RiskTier | None = None,
        groups: Collection[str] | None = None,
    ) -> list[Task]:
        """Tasks a worker could take now: posted or assigned with a free slot, not past due,
        not already held by ``exclude_worker``, of one of ``task_types`` and at most
        ``max_risk`` when given; soonest deadline first, then higher risk.

        With ``exclude_worker``, reviews it asked for itself are left out too; with
        ``groups``, reviews whose policy names reviewer groups are left out unless one of
        them is in ``groups``."""
        ...

    async def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        """Tasks of any organisation still open to work whose deadline has passed."""
        ...

    async def backup_due(self, now: datetime, limit: int) -> list[Task]:
        """Tasks of any organisation, posted or assigned, whose ``backup_at`` has passed."""
        ...

    async def escalation_due(self, now: datetime, limit: int) -> list[Task]:
        """Tasks of any organisation, posted or assigned with a free slot, whose
        ``escalate_at`` has passed."""
        ...


class LedgerTransaction(Protocol):
    """Money, within the same unit of work as the tasks it pays for.

    ``put_*`` methods insert when ``expected_version`` is None (``ConcurrencyConflict`` if
    the record exists) and otherwise replace the record stored at that version
    (``ConcurrencyConflict`` if it moved on), as ``update_task`` does.
    """

    async def find_posting(self, posting_id: str) -> Posting | None: ...

    async def post(self, posting: Posting) -> None:
        """Apply a balanced posting at once: open missing accounts, move every entry, and
        record the posting in its organisation's audit chain.

        Raises ``InsufficientFunds`` (and moves nothing) when a floored account would go
        below zero, ``ConcurrencyConflict`` when a posting with this id exists. Postings and
        entries are never changed or removed.
        """
        ...

    async def balances(self, account_ids: Sequence[str]) -> dict[str, int]:
        """Balances by account id; an account never posted to has 0."""
        ...

    async def sum_balances(
        self, org_id: str, kind: AccountKind, currency: Currency, owner: str | None = None
    ) -> int: ...

    async def spend_since(self, org_id: str, currency: Currency, since: datetime) -> int:
        """The organisation's resolved spend (volume of ``resolve`` postings) since then."""
        ...

    async def list_entries(
        self, account_id: str, after: int | None, limit: int
    ) -> list[EntryRecord]: ...

    async def get_hold(self, task_id: str) -> Hold | None: ...

    async def put_hold(self, hold: Hold, *, expected_version: int | None) -> None: ...

    async def settlements_for_task(self, task_id: str) -> list[Settlement]: ...

    async def due_settlements(self, now: datetime, limit: int) -> list[Settlement]: ...

    async def put_settlement(
        self, settlement: Settlement, *, expected_version: int | None
    ) -> None: ...

    async def find_payout(self, org_id: str, worker_id: str, key: str) -> PayoutRecord | None: ...

    async def payouts_of(self, org_id: str, worker_id: str) -> list[PayoutRecord]: ...

    async def pending_payouts(self, limit: int) -> list[PayoutRecord]: ...

    async def put_payout(self, payout: PayoutRecord, *, expected_version: int | None) -> None: ...

    async def ledger_totals(self) -> dict[Currency, int]:
        """The sum of every account's balance, per currency: zero when the books balance."""
        ...


class WorkerTransaction(Protocol):
    """Worker profiles and what the engine learned about them (``put_*`` as for the
    ledger: insert with ``expected_version`` None, else replace that version)."""

    async def get_worker(self, org_id: str, worker_id: str) -> WorkerProfile | None: ...

    async def put_worker(self, worker: WorkerProfile, *, expected_version: int | None) -> None: ...

    async def list_workers(self, org_id: str) -> list[WorkerProfile]: ...

    async def worker_stats(
        self, org_id: str, task_type: str, worker_ids: Sequence[str]
    ) -> dict[str, WorkerStats]:
        """The stats on record for these workers (absent ones are left out)."""
        ...

    async def put_worker_stats(
        self, stats: WorkerStats, *, expected_version: int | None
    ) -> None: ...

    async def stats_of_worker(self, org_id: str, worker_id: str) -> list[WorkerStats]:
        """A worker's stats on every task type, by task type."""
        ...

    async def add_samples(self, samples: Sequence[AnswerSample]) -> None:
        """Append judged answers to their task types' crowd record."""
        ...

    async def learn(self, sample: AnswerSample, *, gold: bool | None, agreed: bool | None) -> None:
        """One judged answer, learned: appended to its task type's crowd record and folded
        into its worker's stats (:meth:`WorkerStats.with_answer`; a first answer makes the
        record). Atomic per worker: concurrent lessons about one worker all count, none
        conflicts, and none holds the worker's record before this call (a decision reads
        the record unlocked; on PostgreSQL this is one upsert that adds to it)."""
        ...

    async def crowd_stats(
        self, org_id: str, task_type: str, *, durations: int = 200, labels: int = 1000
    ) -> WorkerStats:
        """Everyone on a task type (``worker_id`` "*"): the last ``durations`` times on
        task (oldest first) and the categories of the last ``labels`` answers (``answers``
        counts that window). Only recent samples count; a store may drop older ones."""
        ...

    async def active_load(self, org_id: str, worker_id: str) -> int:
        """How many tasks the worker holds an active assignment on right now."""
        ...


class GovernanceTransaction(Protocol):
    """Policies, reviewer groups, standing approvals and spent decision tokens."""

    async def get_policy(self, org_id: str) -> Policy | None:
        """The organisation's newest policy version, or None when it never saved one."""
        ...

    async def put_policy(self, org_id: str, policy: Policy) -> None:
        """Save a new version: ``policy.version`` must be one more than the newest (1 for
        the first), else ``ConcurrencyConflict``. Versions are kept, never changed."""
        ...

    async def policy_context(
        self, org_id: str, tool: str, now: datetime, *, known_version: int | None = None
    ) -> PolicyContext:
        """The policy (left out when its version is ``known_version``: the caller has it
        compiled), the groups and ``tool``'s standing approvals active at ``now``."""
        ...

    async def list_groups(self, org_id: str) -> list[ReviewerGroup]:
        """The organisation's reviewer groups, by name."""
        ...

    async def put_group(self, group: ReviewerGroup, *, expected_version: int | None) -> None: ...

    async def delete_group(self, org_id: str, name: str, *, expected_version: int) -> None:
        """Remove a group stored at ``expected_version`` (``ConcurrencyConflict`` if not)."""
        ...

    async def get_standing(self, org_id: str, approval_id: str) -> StandingApproval | None: ...

    async def list_standing(
        self, org_id: str, *, tool: str | None = None, active_at: datetime | None = None
    ) -> list[StandingApproval]:
        """Standing approvals, oldest first: of ``tool`` only, active at ``active_at`` only
        (unrevoked and unexpired), when given."""
        ...

    async def put_standing(
        self, approval: StandingApproval, *, expected_version: int | None
    ) -> None: ...

    async def token_spent(self, token_id: str) -> bool: ...

    async def spend_token(self, org_id: str, token_id: str, task_id: str, at: datetime) -> None:
        """Mark a decision token used; ``ConcurrencyConflict`` when it already was."""
        ...


class AuditTransaction(Protocol):
    """The audit chains. Records appended in a transaction are sealed onto their
    organisation's chain as it commits (and vanish with it if it rolls back); concurrent
    transactions never fork a chain."""

    async def append_audit(self, records: Sequence[AuditRecord]) -> None: ...

    async def audit_entries(self, org_id: str, after: int, limit: int) -> list[AuditEntry]:
        """Sealed entries with ``seq`` above ``after``, oldest first."""
        ...

    async def audit_head(self, org_id: str) -> AuditHead | None:
        """The organisation's newest entry's ``seq`` and hash (None: no entries yet)."""
        ...

    async def audit_orgs(self) -> list[str]:
        """Every organisation with an audit chain."""
        ...


class Transaction(
    TaskTransaction,
    LedgerTransaction,
    WorkerTransaction,
    GovernanceTransaction,
    AuditTransaction,
    Protocol,
):
    """One unit of work over tasks and money. Writes become visible to others only when it
    commits; an exception rolls all of it back."""


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
