"""``SqlStore``: the store on SQLite (default, one file, WAL) or PostgreSQL.

SQLite needs nothing more than ``pip install handrail-core``; PostgreSQL needs the ``sql``
extra (``pip install 'handrail-core[sql]'``: asyncpg). Writes use optimistic
version checks, so concurrent writers, in one process or several, never overwrite each
other: the loser gets ``ConcurrencyConflict`` and the engine retries it.

Each store call runs all of its statements in one step (see ``_sql_queries``):

- **SQLite** uses the standard ``sqlite3`` module. Write transactions start with
  ``BEGIN IMMEDIATE`` (no upgrade deadlocks), one process runs one at a time, queued on an
  ``asyncio.Lock``; another process's writer is waited for without blocking the loop, up
  to ``busy_timeout``. Statements run inline on the event loop (see ``_SqliteDriver``);
  WAL mode lets readers run beside the writer.
  ``synchronous=NORMAL`` keeps every commit across a killed process.
- **PostgreSQL** uses asyncpg through SQLAlchemy's async engine.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

try:
    from sqlalchemy import Connection, create_engine, func, select
    from sqlalchemy.exc import DBAPIError
except ImportError as _missing:  # pragma: no cover - depends on the install
    raise ImportError(
        "SqlStore needs SQLAlchemy, which handrail-core depends on: pip install handrail-core"
    ) from _missing

from ..audit import AuditEntry, AuditHead, AuditRecord, event_record, posting_record
from ..errors import ConcurrencyConflict, StoreError
from ..ledger._accounts import AccountKind
from ..ledger._model import EntryRecord, Hold, PayoutRecord, Posting, Settlement
from ..models import Kind, RiskTier, Task, TaskEvent
from ..money import Currency
from ..policy import Policy, ReviewerGroup, StandingApproval
from ..workers import AnswerSample, WorkerProfile, WorkerStats
from . import _sql_queries as q
from ._protocol import Change, PolicyContext, Store, TaskQuery, Transaction
from ._sql_tables import metadata

__all__ = ["SqlStore", "SqlTransaction", "metadata", "normalize_url"]

from ._sql_drivers import (
    SQLITE_CONNECTIONS,
    P,
    Step,
    T,
    _AsyncDriver,
    _Driver,
    _postgres_setup,
    _Runner,
    _sqlite_setup,
    _SqliteDriver,
    normalize_url,
)

Derived = dict[tuple[Callable[..., Any], str], tuple[int, Any]]
"""What ``SqlTransaction.configured`` keeps per store: by loader and organisation, the
configuration version it was read at and the value."""
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_SCHEMA_LOCK = 0x68616E64  # "hand": the advisory lock taken while creating tables


class SqlStore:
    """Tasks and history in a SQL database."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self.dialect = driver.dialect
        self._heads: q.Heads = {}  # where this store last sealed each audit chain
        self._configs: q.Configs = {}  # organisations' policies, groups, standing approvals
        self._derived: Derived = {}  # what ``SqlTransaction.configured`` keeps

    @classmethod
    async def open(
        cls, url: str = "sqlite:///handrail.db", *, create: bool = True, **kwargs: Any
    ) -> SqlStore:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql://...``) and, with
        ``create``, make the tables that are missing. ``kwargs`` go to SQLAlchemy's
        ``create_engine``/``create_async_engine``."""
        url = normalize_url(url)
        driver: _Driver
        if url.startswith("sqlite"):
            options: dict[str, Any] = {
                "connect_args": {"check_same_thread": False},
                "pool_size": SQLITE_CONNECTIONS,
                "max_overflow": 0,
            }
            engine = create_engine(url, **(options | kwargs))
            _sqlite_setup(engine)
            driver = _SqliteDriver(engine)
        else:
            try:
                from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

                async_engine = create_async_engine(url, **kwargs)
            except ImportError as exc:  # asyncpg, or greenlet, is missing
                raise ImportError(
                    f"PostgreSQL needs the sql extra: pip install 'handrail-core[sql]' ({exc})"
                ) from exc
            _postgres_setup(async_engine.sync_engine)
            driver = _AsyncDriver(async_engine)
        store = cls(driver)
        if create:
            await store.create_schema()
        return store

    async def create_schema(self) -> None:
        """Create missing tables. Safe when several processes start at once: SQLite's
        ``BEGIN IMMEDIATE`` and a PostgreSQL advisory lock let one of them at a time."""

        def create(conn: Connection) -> None:
            if self.dialect == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            metadata.create_all(conn)

        try:
            await self.run(create)
        except StoreError as exc:
            raise StoreError(f"could not create the schema: {exc}") from exc

    async def drop_schema(self) -> None:
        await self.run(metadata.drop_all)

    @asynccontextmanager
    async def _runner(self, *, readonly: bool) -> AsyncIterator[_Runner]:
        try:
            async with self._driver.connection(readonly=readonly) as run:
                yield run
        except DBAPIError as exc:
            if q.sqlstate(exc) in _RETRYABLE_SQLSTATES:
                raise ConcurrencyConflict("transaction", "serialization") from exc
            raise StoreError(f"database error: {exc.orig}") from exc
        except OSError as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[SqlTransaction]:
        async with self._runner(readonly=readonly) as run:
            tx = SqlTransaction(run, self._configs, readonly=readonly, derived=self._derived)
            yield tx
            if tx._audit or tx._events:
                # sealed as it commits (the chain's head is held only that long), the task
                # events written under the head: see ``seal_audit``
                seal = functools.partial(
                    q.seal_audit, records=tx._audit, heads=self._heads, events=tx._events
                )
                run.last.append(seal)

    async def run(self, step: Callable[[Connection], T], *, readonly: bool = False) -> T:
        """Run ``step(connection)`` in a transaction of its own: for raw SQL (tests,
        maintenance). Errors come out as ``StoreError``."""
        async with self._runner(readonly=readonly) as run:
            return await run(step)

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        async with self._runner(readonly=True) as run:
            return await run(q.changes_since, seq, limit)

    async def last_seq(self) -> int:
        async with self._runner(readonly=True) as run:
            return await run(q.last_seq)

    async def close(self) -> None:
        await self._driver.dispose()


class SqlTransaction:
    """One unit of work on a ``SqlStore`` (see ``handrail.store.Transaction``)."""

    def __init__(
        self,
        run: _Runner,
        configs: q.Configs | None = None,
        *,
        readonly: bool = False,
        derived: Derived | None = None,
    ) -> None:
        self._run = run
        self._readonly = readonly
        self._versions: q.Versions = {}  # organisations' configuration versions, as read
        self._derived: Derived = {} if derived is None else derived
        # workers' records read (locked) or written in this transaction, by key: the
        # learning step reads again what verification read
        self._stats: dict[tuple[str, str, str], WorkerStats | None] = {}
        self._configs: q.Configs = {} if configs is None else configs
        self._seen: q.Seen = {}
        self._audit: list[AuditRecord] = []
        self._events: list[TaskEvent] = []  # written as the transaction commits

    async def run(self, step: Step[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``step(connection, ...)`` in this unit of work: for a server's own tables
        written together with the engine's (a webhook outbox, say)."""
        return await self._run(step, *args, **kwargs)

    async def config_version(self, org_id: str) -> int:
        """The organisation's configuration version as this transaction reads it (once):
        a number the database's triggers move on at every change of its policies, groups
        and standing approvals, and of any table a server binds to it the same way (its
        webhook endpoints and notification channels); 0 if it was never configured."""
        held = self._versions.get(org_id)
        if held is None:
            held = await self._run(q.config_version, self._versions, org_id)
        return held

    async def configured(self, org_id: str, load: Step[[str], T], /) -> T:
        """``load(connection, org_id)``, kept by the store while the organisation's
        configuration version stays what this transaction reads: for what a server derives
        from its own configuration tables (triggers on them must move the version on, so a
        change committed anywhere before this transaction's read is in the answer). Costs
        no statement when this transaction has read the version and the store holds it."""
        version = await self.config_version(org_id)
        held = self._derived.get((load, org_id))
        if held is not None and held[0] == version:
            return cast(T, held[1])
        value = await self._run(load, org_id)
        if len(self._derived) >= q.CONFIGS_KEPT:
            self._derived.clear()
        self._derived[(load, org_id)] = (version, value)
        return value

    async def get_task(self, org_id: str, task_id: str) -> Task | None:
        return await self._run(q.get_task, self._seen, org_id, task_id)

    async def find_by_key(self, org_id: str, idempotency_key: str) -> Task | None:
        return await self._run(q.find_by_key, self._seen, org_id, idempotency_key)

    async def insert_task(self, task: Task) -> None:
        await self._run(q.insert_task, self._seen, task)

    async def update_task(self, task: Task, *, expected_version: int) -> None:
        if task.version != expected_version + 1:
            raise ValueError("a task's version must go up by one per update")
        await self._run(q.update_task, self._seen, task, expected_version)

    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        """Kept until the commit, which writes them under their organisation's audit head
        (their sequence numbers then follow the commit order); read after the commit."""
        self._events.extend(events)
        self._audit.extend(event_record(e) for e in events)

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        return await self._run(q.list_events, org_id, task_id)

    async def org_events(self, org_id: str, after: int, limit: int) -> list[TaskEvent]:
        return await self._run(q.org_events, org_id, after, limit)

    async def list_tasks(self, org_id: str, query: TaskQuery) -> list[Task]:
        return await self._run(q.list_tasks, self._seen, org_id, query)

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
        return await self._run(
            q.open_tasks,
            self._seen,
            org_id,
            now,
            exclude_worker,
            kind,
            task_type,
            risk_tier,
            limit,
            task_types,
            max_risk,
            groups,
        )

    async def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        return await self._run(q.due_tasks, self._seen, now, limit)

    async def backup_due(self, now: datetime, limit: int) -> list[Task]:
        return await self._run(q.backup_due, self._seen, now, limit)

    async def escalation_due(self, now: datetime, limit: int) -> list[Task]:
        return await self._run(q.escalation_due, self._seen, now, limit)

    # ---------------------------------------------------------------- the ledger

    async def find_posting(self, posting_id: str) -> Posting | None:
        return await self._run(q.find_posting, posting_id)

    async def post(self, posting: Posting) -> None:
        await self._run(q.post, posting)
        self._audit.append(posting_record(posting))

    async def balances(self, account_ids: Sequence[str]) -> dict[str, int]:
        return await self._run(q.balances, account_ids)

    async def sum_balances(
        self, org_id: str, kind: AccountKind, currency: Currency, owner: str | None = None
    ) -> int:
        return await self._run(q.sum_balances, org_id, kind, currency, owner)

    async def spend_since(self, org_id: str, currency: Currency, since: datetime) -> int:
        return await self._run(q.spend_since, org_id, currency, since)

    async def list_entries(
        self, account_id: str, after: int | None, limit: int
    ) -> list[EntryRecord]:
        return await self._run(q.list_entries, account_id, after, limit)

    async def get_hold(self, task_id: str) -> Hold | None:
        return await self._run(q.get_hold, task_id)

    async def put_hold(self, hold: Hold, *, expected_version: int | None) -> None:
        await self._run(q.put_hold, hold, expected_version)

    async def settlements_for_task(self, task_id: str) -> list[Settlement]:
        return await self._run(q.settlements_for_task, task_id)

    async def due_settlements(self, now: datetime, limit: int) -> list[Settlement]:
        return await self._run(q.due_settlements, now, limit)

    async def put_settlement(self, settlement: Settlement, *, expected_version: int | None) -> None:
        await self._run(q.put_settlement, settlement, expected_version)

    async def find_payout(self, org_id: str, worker_id: str, key: str) -> PayoutRecord | None:
        return await self._run(q.find_payout, org_id, worker_id, key)

    async def payouts_of(self, org_id: str, worker_id: str) -> list[PayoutRecord]:
        return await self._run(q.payouts_of, org_id, worker_id)

    async def pending_payouts(self, limit: int) -> list[PayoutRecord]:
        return await self._run(q.pending_payouts, limit)

    async def put_payout(self, payout: PayoutRecord, *, expected_version: int | None) -> None:
        await self._run(q.put_payout, payout, expected_version)

    async def ledger_totals(self) -> dict[Currency, int]:
        return await self._run(q.ledger_totals)

    # ---------------------------------------------------------------- workers

    async def get_worker(self, org_id: str, worker_id: str) -> WorkerProfile | None:
        return await self._run(q.get_worker, org_id, worker_id)

    async def put_worker(self, worker: WorkerProfile, *, expected_version: int | None) -> None:
        await self._run(q.put_worker, worker, expected_version)

    async def list_workers(self, org_id: str) -> list[WorkerProfile]:
        return await self._run(q.list_workers, org_id)

    async def worker_stats(
        self, org_id: str, task_type: str, worker_ids: Sequence[str]
    ) -> dict[str, WorkerStats]:
        if self._readonly:
            return await self._run(q.get_worker_stats, org_id, task_type, worker_ids)
        missing = [w for w in worker_ids if (org_id, task_type, w) not in self._stats]
        if missing:  # read once per transaction (what verification and learning share)
            found = await self._run(q.get_worker_stats, org_id, task_type, missing)
            for worker in missing:
                self._stats[org_id, task_type, worker] = found.get(worker)
        held = ((w, self._stats[org_id, task_type, w]) for w in worker_ids)
        return {w: stats for w, stats in held if stats is not None}

    async def put_worker_stats(self, stats: WorkerStats, *, expected_version: int | None) -> None:
        await self._run(q.put_worker_stats, stats, expected_version)
        self._stats[stats.org_id, stats.task_type, stats.worker_id] = stats

    async def learn(self, sample: AnswerSample, *, gold: bool | None, agreed: bool | None) -> None:
        key = (sample.org_id, sample.task_type, sample.worker_id)
        read = key in self._stats
        learned = await self._run(q.learn, sample, gold, agreed, self._stats.get(key), read)
        if learned is None:
            self._stats.pop(key, None)  # added to in place: read it again if asked
        else:
            self._stats[key] = learned

    async def stats_of_worker(self, org_id: str, worker_id: str) -> list[WorkerStats]:
        return await self._run(q.stats_of_worker, org_id, worker_id)

    async def add_samples(self, samples: Sequence[AnswerSample]) -> None:
        if samples:
            await self._run(q.add_samples, samples)

    async def crowd_stats(
        self, org_id: str, task_type: str, *, durations: int = 200, labels: int = 1000
    ) -> WorkerStats:
        return await self._run(q.crowd_stats, org_id, task_type, durations, labels)

    async def active_load(self, org_id: str, worker_id: str) -> int:
        return await self._run(q.active_load, org_id, worker_id)

    # ---------------------------------------------------------------- policies, authority

    async def get_policy(self, org_id: str) -> Policy | None:
        return await self._run(q.get_policy, org_id)

    async def put_policy(self, org_id: str, policy: Policy) -> None:
        await self._run(q.put_policy, org_id, policy)

    async def policy_context(
        self, org_id: str, tool: str, now: datetime, *, known_version: int | None = None
    ) -> PolicyContext:
        return await self._run(
            q.policy_context, self._configs, self._versions, org_id, tool, now, known_version
        )

    async def list_groups(self, org_id: str) -> list[ReviewerGroup]:
        return await self._run(q.list_groups, org_id)

    async def put_group(self, group: ReviewerGroup, *, expected_version: int | None) -> None:
        await self._run(q.put_group, group, expected_version)

    async def delete_group(self, org_id: str, name: str, *, expected_version: int) -> None:
        await self._run(q.delete_group, org_id, name, expected_version)

    async def get_standing(self, org_id: str, approval_id: str) -> StandingApproval | None:
        return await self._run(q.get_standing, org_id, approval_id)

    async def list_standing(
        self, org_id: str, *, tool: str | None = None, active_at: datetime | None = None
    ) -> list[StandingApproval]:
        return await self._run(q.list_standing, org_id, tool, active_at)

    async def put_standing(
        self, approval: StandingApproval, *, expected_version: int | None
    ) -> None:
        await self._run(q.put_standing, approval, expected_version)

    async def token_spent(self, token_id: str) -> bool:
        return await self._run(q.token_spent, token_id)

    async def spend_token(self, org_id: str, token_id: str, task_id: str, at: datetime) -> None:
        await self._run(q.spend_token, org_id, token_id, task_id, at)

    # ---------------------------------------------------------------- the audit chains

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        self._audit.extend(records)

    async def audit_entries(self, org_id: str, after: int, limit: int) -> list[AuditEntry]:
        return await self._run(q.audit_entries, org_id, after, limit)

    async def audit_head(self, org_id: str) -> AuditHead | None:
        return await self._run(q.audit_head, org_id)

    async def audit_orgs(self) -> list[str]:
        return await self._run(q.audit_orgs)


if TYPE_CHECKING:  # the type checker proves the store keeps the whole contract

    def _conforms(store: SqlStore, tx: SqlTransaction) -> tuple[Store, Transaction]:
        return store, tx
