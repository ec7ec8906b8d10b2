"""The store's SQL, written once as plain functions over a synchronous ``Connection``.

``SqlStore`` runs each function in one step: on a worker thread for SQLite, through
``AsyncConnection.run_sync`` (asyncpg underneath) for PostgreSQL. One store call is one
hop, however many statements it takes.

``seen`` maps task ids to the assignments read in the current transaction, so an update
writes only the assignment rows that changed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..audit import AuditEntry, AuditHead, AuditRecord, chain
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
from ..models import RISK_RANK, Assignment, AssignmentStatus, Kind, RiskTier, Task, TaskEvent
from ..money import Currency
from ..policy import Policy, ReviewerGroup, StandingApproval
from ..workers import AnswerSample, WorkerProfile, WorkerStats
from ._protocol import Change, PolicyContext, TaskQuery
from ._sql_rows import (
    assignment_rows,
    audit_from,
    entry_from,
    event_from,
    event_row,
    group_from,
    group_row,
    hold_from,
    hold_row,
    payout_from,
    payout_row,
    policy_from,
    settlement_from,
    settlement_row,
    standing_from,
    standing_row,
    stats_from,
    stats_row,
    task_from,
    task_row,
    worker_from,
    worker_row,
)
from ._sql_tables import (
    answer_samples,
    assignments,
    audit_heads,
    audit_log,
    decision_tokens,
    ledger_accounts,
    ledger_entries,
    ledger_holds,
    ledger_payouts,
    ledger_postings,
    ledger_settlements,
    policies,
    reviewer_groups,
    standing_approvals,
    task_events,
    tasks,
    worker_stats,
    workers,
)

Seen = dict[str, tuple[Assignment, ...]]

_OPEN_TO_WORK = ("posted", "assigned")
_EXPIRABLE = ("posted", "estimate_pending", "assigned")

_SET_ASSIGNMENT = (
    update(assignments)
    .where(
        assignments.c.task_id == bindparam("where_task"),
        assignments.c.position == bindparam("where_position"),
    )
    .values(
        {
            c: bindparam(c)
            for c in ("worker_id", "status", "claimed_at", "submitted_at", "released_at", "output")
        }
    )
)


# The hot statements, built once: SQLAlchemy then only binds parameters.
_TASK_BY_ID = select(tasks).where(
    tasks.c.id == bindparam("task_id"), tasks.c.org_id == bindparam("org_id")
)
_TASK_BY_KEY = select(tasks).where(
    tasks.c.org_id == bindparam("org_id"), tasks.c.idempotency_key == bindparam("key")
)
_ASSIGNMENTS_OF = (
    select(assignments)
    .where(assignments.c.task_id.in_(bindparam("ids", expanding=True)))
    .order_by(assignments.c.task_id, assignments.c.position)
)
_UPDATE_TASK = (
    update(tasks)
    .where(
        tasks.c.id == bindparam("where_id"),
        tasks.c.org_id == bindparam("where_org"),
        tasks.c.version == bindparam("where_version"),
    )
    .values({c.name: bindparam(c.name) for c in tasks.c if c.name != "id"})
)
_INSERT_TASK = insert(tasks)
_INSERT_ASSIGNMENTS = insert(assignments)
_INSERT_EVENTS = insert(task_events)
_EVENTS_OF = (
    select(task_events)
    .where(
        task_events.c.task_id == bindparam("task_id"), task_events.c.org_id == bindparam("org_id")
    )
    .order_by(task_events.c.seq)
)


def sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None) or getattr(getattr(orig, "__cause__", None), attr, None)
        if isinstance(code, str):
            return code
    return None


def _unique_violation(exc: IntegrityError) -> bool:
    return sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _load(conn: Connection, seen: Seen, rows: Sequence[Any]) -> list[Task]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    held: dict[str, list[Any]] = {i: [] for i in ids}
    for a in conn.execute(_ASSIGNMENTS_OF, {"ids": ids}).all():
        held[a.task_id].append(a)
    found = [task_from(r, held[r.id]) for r in rows]
    seen.update((t.id, t.assignments) for t in found)
    return found


def get_task(conn: Connection, seen: Seen, org_id: str, task_id: str) -> Task | None:
    rows = conn.execute(_TASK_BY_ID, {"task_id": task_id, "org_id": org_id}).all()
    found = _load(conn, seen, rows)
    return found[0] if found else None


def find_by_key(conn: Connection, seen: Seen, org_id: str, key: str) -> Task | None:
    rows = conn.execute(_TASK_BY_KEY, {"org_id": org_id, "key": key}).all()
    found = _load(conn, seen, rows)
    return found[0] if found else None


def insert_task(conn: Connection, seen: Seen, task: Task) -> None:
    try:
        with conn.begin_nested():
            conn.execute(_INSERT_TASK, [task_row(task)])
    except IntegrityError as exc:
        if _unique_violation(exc):  # the id or the idempotency key is taken
            raise ConcurrencyConflict("task", task.id) from exc
        raise
    _write_assignments(conn, seen, task, ())


def _write_assignments(
    conn: Connection, seen: Seen, task: Task, before: tuple[Assignment, ...]
) -> None:
    """Assignments only grow, and earlier ones change status: update what differs, insert
    what is new."""
    rows = assignment_rows(task)
    changed = [
        {**row, "where_task": task.id, "where_position": i}
        for i, (row, old) in enumerate(zip(rows, before, strict=False))
        if old != task.assignments[i]
    ]
    if changed:
        conn.execute(_SET_ASSIGNMENT, changed)
    if len(rows) > len(before):
        conn.execute(_INSERT_ASSIGNMENTS, rows[len(before) :])
    seen[task.id] = task.assignments


def update_task(conn: Connection, seen: Seen, task: Task, expected_version: int) -> None:
    row = task_row(task)
    del row["id"]
    where = {"where_id": task.id, "where_org": task.org_id, "where_version": expected_version}
    result = conn.execute(_UPDATE_TASK, {**row, **where})
    if result.rowcount != 1:
        raise ConcurrencyConflict("task", task.id)
    before = seen.get(task.id)
    if before is None or len(before) > len(task.assignments):
        # not read in this transaction, or shrunk (only direct store users do that)
        conn.execute(assignments.delete().where(assignments.c.task_id == task.id))
        before = ()
    _write_assignments(conn, seen, task, before)


def append_events(conn: Connection, events: Sequence[TaskEvent]) -> None:
    conn.execute(_INSERT_EVENTS, [event_row(e) for e in events])


def list_events(conn: Connection, org_id: str, task_id: str) -> list[TaskEvent]:
    rows = conn.execute(_EVENTS_OF, {"task_id": task_id, "org_id": org_id}).all()
    return [event_from(r) for r in rows]


def org_events(conn: Connection, org_id: str, after: int, limit: int) -> list[TaskEvent]:
    query = (
        select(task_events)
        .where(task_events.c.org_id == org_id, task_events.c.seq > after)
        .order_by(task_events.c.seq)
        .limit(limit)
    )
    return [event_from(r) for r in conn.execute(query).all()]


def list_tasks(conn: Connection, seen: Seen, org_id: str, query: TaskQuery) -> list[Task]:
    stmt = select(tasks).where(tasks.c.org_id == org_id)
    if query.statuses is not None:
        stmt = stmt.where(tasks.c.status.in_([s.value for s in query.statuses]))
    if query.kind is not None:
        stmt = stmt.where(tasks.c.kind == query.kind.value)
    if query.task_type is not None:
        stmt = stmt.where(tasks.c.task_type == query.task_type)
    if query.batch_id is not None:
        stmt = stmt.where(tasks.c.batch_id == query.batch_id)
    if query.after is not None:
        after = tasks.c.id < query.after if query.newest_first else tasks.c.id > query.after
        stmt = stmt.where(after)
    order = tasks.c.id.desc() if query.newest_first else tasks.c.id
    stmt = stmt.order_by(order).limit(query.limit)
    return _load(conn, seen, conn.execute(stmt).all())


def open_tasks(
    conn: Connection,
    seen: Seen,
    org_id: str,
    now: datetime,
    exclude_worker: str | None,
    kind: Kind | None,
    task_type: str | None,
    risk_tier: RiskTier | None,
    limit: int,
    task_types: Collection[str] | None = None,
    max_risk: RiskTier | None = None,
    groups: Collection[str] | None = None,
) -> list[Task]:
    stmt = select(tasks).where(
        tasks.c.org_id == org_id,
        tasks.c.status.in_(_OPEN_TO_WORK),
        tasks.c.open_slots > 0,
        tasks.c.expires_at > now,
    )
    if exclude_worker is not None:
        stmt = stmt.where(
            ~exists().where(
                and_(
                    assignments.c.task_id == tasks.c.id,
                    assignments.c.worker_id == exclude_worker,
                    assignments.c.status != AssignmentStatus.RELEASED.value,
                )
            ),
            or_(tasks.c.kind != Kind.REVIEW.value, tasks.c.created_by != exclude_worker),
        )
    if groups is not None:
        stmt = stmt.where(or_(tasks.c.reviewer_groups.is_(None), _names_any(conn, sorted(groups))))
    if kind is not None:
        stmt = stmt.where(tasks.c.kind == kind.value)
    if task_type is not None:
        stmt = stmt.where(tasks.c.task_type == task_type)
    if risk_tier is not None:
        stmt = stmt.where(tasks.c.risk_tier == risk_tier.value)
    if task_types is not None:
        stmt = stmt.where(tasks.c.task_type.in_(sorted(task_types)))
    if max_risk is not None:
        stmt = stmt.where(tasks.c.risk_rank <= RISK_RANK[max_risk])
    stmt = stmt.order_by(tasks.c.expires_at, tasks.c.risk_rank.desc(), tasks.c.id).limit(limit)
    return _load(conn, seen, conn.execute(stmt).all())


def _names_any(conn: Connection, names: list[str]) -> Any:
    """The task's ``reviewer_groups`` (a JSON array) names one of ``names``."""
    if not names:
        return literal(False)
    if conn.dialect.name == "postgresql":
        return func.jsonb_exists_any(tasks.c.reviewer_groups, array(names))
    each = func.json_each(tasks.c.reviewer_groups).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value.in_(names)))


def _reached(
    conn: Connection, seen: Seen, statuses: Sequence[str], when: Any, now: datetime, limit: int
) -> list[Task]:
    """Tasks in ``statuses`` whose time column ``when`` has come, soonest first."""
    stmt = (
        select(tasks)
        .where(tasks.c.status.in_(statuses), when <= now)
        .order_by(when, tasks.c.id)
        .limit(limit)
    )
    return _load(conn, seen, conn.execute(stmt).all())


def due_tasks(conn: Connection, seen: Seen, now: datetime, limit: int) -> list[Task]:
    return _reached(conn, seen, _EXPIRABLE, tasks.c.expires_at, now, limit)


def backup_due(conn: Connection, seen: Seen, now: datetime, limit: int) -> list[Task]:
    return _reached(conn, seen, _OPEN_TO_WORK, tasks.c.backup_at, now, limit)


def escalation_due(conn: Connection, seen: Seen, now: datetime, limit: int) -> list[Task]:
    stmt = (
        select(tasks)
        .where(
            tasks.c.status.in_(_OPEN_TO_WORK),
            tasks.c.escalate_at <= now,
            tasks.c.open_slots > 0,
        )
        .order_by(tasks.c.escalate_at, tasks.c.id)
        .limit(limit)
    )
    return _load(conn, seen, conn.execute(stmt).all())


def changes_since(conn: Connection, seq: int, limit: int) -> list[Change]:
    query = (
        select(task_events.c.seq, task_events.c.org_id, task_events.c.task_id)
        .where(task_events.c.seq > seq)
        .order_by(task_events.c.seq)
        .limit(limit)
    )
    return [Change(int(r.seq), r.org_id, r.task_id) for r in conn.execute(query).all()]


def last_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.max(task_events.c.seq))).scalar() or 0)


# ---------------------------------------------------------------- the ledger


def _upsert_accounts(conn: Connection, accounts: Sequence[Account]) -> None:
    rows = [
        {
            "id": a.id,
            "kind": a.kind.value,
            "currency": a.currency.value,
            "org_id": a.org_id,
            "owner": a.owner,
            "floored": a.floored,
            "balance": 0,
        }
        for a in sorted(accounts, key=lambda a: a.id)  # one lock order for everyone
    ]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(make(ledger_accounts).on_conflict_do_nothing(index_elements=["id"]), rows)


_MOVE = (
    update(ledger_accounts)
    .where(
        ledger_accounts.c.id == bindparam("account"),
        or_(~ledger_accounts.c.floored, ledger_accounts.c.balance + bindparam("delta") >= 0),
    )
    .values(balance=ledger_accounts.c.balance + bindparam("delta"))
)
_BALANCE = select(ledger_accounts.c.balance).where(ledger_accounts.c.id == bindparam("account"))


def find_posting(conn: Connection, posting_id: str) -> Posting | None:
    row = conn.execute(select(ledger_postings.c.body).where(ledger_postings.c.id == posting_id))
    body = row.scalar()
    return Posting.model_validate(body) if body is not None else None


def post(conn: Connection, posting: Posting) -> None:
    accounts = {e.account.id: e.account for e in posting.entries}
    moves: dict[str, int] = {}
    for entry in posting.entries:
        moves[entry.account.id] = moves.get(entry.account.id, 0) + entry.amount
    _upsert_accounts(conn, list(accounts.values()))
    for account_id in sorted(moves):  # one lock order for everyone: no deadlocks
        delta = moves[account_id]
        if delta and conn.execute(_MOVE, {"account": account_id, "delta": delta}).rowcount != 1:
            have = conn.execute(_BALANCE, {"account": account_id}).scalar() or 0
            raise InsufficientFunds(account_id, posting.currency.value, -delta, int(have))
    conn.execute(
        insert(ledger_entries),
        [
            {
                "posting_id": posting.id,
                "kind": posting.kind.value,
                "account_id": e.account.id,
                "amount": e.amount,
                "created_at": posting.created_at,
            }
            for e in posting.entries
        ],
    )
    try:
        with conn.begin_nested():
            conn.execute(
                insert(ledger_postings),
                [
                    {
                        "id": posting.id,
                        "kind": posting.kind.value,
                        "org_id": posting.org_id,
                        "task_id": posting.task_id,
                        "currency": posting.currency.value,
                        "volume": posting.volume,
                        "created_at": posting.created_at,
                        "body": posting.model_dump(mode="json"),
                    }
                ],
            )
    except IntegrityError as exc:
        if _unique_violation(exc):
            raise ConcurrencyConflict("posting", posting.id) from exc
        raise


def balances(conn: Connection, account_ids: Sequence[str]) -> dict[str, int]:
    found = dict(
        conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.balance).where(
                ledger_accounts.c.id.in_(list(account_ids))
            )
        ).all()
    )
    return {a: int(found.get(a, 0)) for a in account_ids}


def sum_balances(
    conn: Connection, org_id: str, kind: AccountKind, currency: Currency, owner: str | None
) -> int:
    query = select(func.coalesce(func.sum(ledger_accounts.c.balance), 0)).where(
        ledger_accounts.c.org_id == org_id,
        ledger_accounts.c.kind == kind.value,
        ledger_accounts.c.currency == currency.value,
    )
    if owner is not None:
        query = query.where(ledger_accounts.c.owner == owner)
    return int(conn.execute(query).scalar() or 0)


def spend_since(conn: Connection, org_id: str, currency: Currency, since: datetime) -> int:
    query = select(func.coalesce(func.sum(ledger_postings.c.volume), 0)).where(
        ledger_postings.c.org_id == org_id,
        ledger_postings.c.kind == PostingKind.RESOLVE.value,
        ledger_postings.c.currency == currency.value,
        ledger_postings.c.created_at >= since,
    )
    return int(conn.execute(query).scalar() or 0)


def list_entries(
    conn: Connection, account_id: str, after: int | None, limit: int
) -> list[EntryRecord]:
    query = select(ledger_entries).where(ledger_entries.c.account_id == account_id)
    if after is not None:
        query = query.where(ledger_entries.c.seq > after)
    query = query.order_by(ledger_entries.c.seq).limit(limit)
    return [entry_from(r) for r in conn.execute(query).all()]


def _put(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    row: dict[str, Any],
    expected_version: int | None,
    what: str,
) -> None:
    """Insert (``expected_version`` None; ``ConcurrencyConflict`` if the key is taken) or
    replace the row stored at that version (``ConcurrencyConflict`` if it moved on)."""
    name = "/".join(str(row[k]) for k in keys)
    if expected_version is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(table), [row])
        except IntegrityError as exc:
            if _unique_violation(exc):
                raise ConcurrencyConflict(what, name) from exc
            raise
        return
    if row["version"] != expected_version + 1:
        raise ValueError(f"a {what}'s version must go up by one per update")
    where = [table.c[k] == row[k] for k in keys] + [table.c.version == expected_version]
    values = {k: v for k, v in row.items() if k not in keys}
    if conn.execute(update(table).where(*where).values(**values)).rowcount != 1:
        raise ConcurrencyConflict(what, name)


def get_hold(conn: Connection, task_id: str) -> Hold | None:
    row = conn.execute(select(ledger_holds).where(ledger_holds.c.task_id == task_id)).first()
    return hold_from(row) if row is not None else None


def put_hold(conn: Connection, hold: Hold, expected_version: int | None) -> None:
    _put(conn, ledger_holds, ("task_id",), hold_row(hold), expected_version, "hold")


def settlements_for_task(conn: Connection, task_id: str) -> list[Settlement]:
    query = (
        select(ledger_settlements)
        .where(ledger_settlements.c.task_id == task_id)
        .order_by(ledger_settlements.c.id)
    )
    return [settlement_from(r) for r in conn.execute(query).all()]


def due_settlements(conn: Connection, now: datetime, limit: int) -> list[Settlement]:
    query = (
        select(ledger_settlements)
        .where(
            ledger_settlements.c.status == SettlementStatus.PENDING.value,
            ledger_settlements.c.due_at <= now,
        )
        .order_by(ledger_settlements.c.due_at, ledger_settlements.c.id)
        .limit(limit)
    )
    return [settlement_from(r) for r in conn.execute(query).all()]


def put_settlement(conn: Connection, settlement: Settlement, expected_version: int | None) -> None:
    _put(
        conn,
        ledger_settlements,
        ("id",),
        settlement_row(settlement),
        expected_version,
        "settlement",
    )


def find_payout(conn: Connection, org_id: str, worker_id: str, key: str) -> PayoutRecord | None:
    row = conn.execute(
        select(ledger_payouts).where(
            ledger_payouts.c.org_id == org_id,
            ledger_payouts.c.worker_id == worker_id,
            ledger_payouts.c.key == key,
        )
    ).first()
    return payout_from(row) if row is not None else None


def payouts_of(conn: Connection, org_id: str, worker_id: str) -> list[PayoutRecord]:
    query = (
        select(ledger_payouts)
        .where(ledger_payouts.c.org_id == org_id, ledger_payouts.c.worker_id == worker_id)
        .order_by(ledger_payouts.c.id)
    )
    return [payout_from(r) for r in conn.execute(query).all()]


def pending_payouts(conn: Connection, limit: int) -> list[PayoutRecord]:
    query = (
        select(ledger_payouts)
        .where(ledger_payouts.c.status == PayoutStatus.PENDING.value)
        .order_by(ledger_payouts.c.id)
        .limit(limit)
    )
    return [payout_from(r) for r in conn.execute(query).all()]


def put_payout(conn: Connection, payout: PayoutRecord, expected_version: int | None) -> None:
    _put(conn, ledger_payouts, ("id",), payout_row(payout), expected_version, "payout")


def ledger_totals(conn: Connection) -> dict[Currency, int]:
    query = select(ledger_accounts.c.currency, func.sum(ledger_accounts.c.balance)).group_by(
        ledger_accounts.c.currency
    )
    return {Currency(c): int(total) for c, total in conn.execute(query).all()}


# ---------------------------------------------------------------- workers


def get_worker(conn: Connection, org_id: str, worker_id: str) -> WorkerProfile | None:
    row = conn.execute(
        select(workers).where(workers.c.org_id == org_id, workers.c.id == worker_id)
    ).first()
    return worker_from(row) if row is not None else None


def put_worker(conn: Connection, worker: WorkerProfile, expected_version: int | None) -> None:
    _put(conn, workers, ("org_id", "id"), worker_row(worker), expected_version, "worker")


def list_workers(conn: Connection, org_id: str) -> list[WorkerProfile]:
    rows = conn.execute(select(workers).where(workers.c.org_id == org_id).order_by(workers.c.id))
    return [worker_from(r) for r in rows.all()]


def get_worker_stats(
    conn: Connection, org_id: str, task_type: str, worker_ids: Sequence[str]
) -> dict[str, WorkerStats]:
    query = select(worker_stats).where(
        worker_stats.c.org_id == org_id,
        worker_stats.c.task_type == task_type,
        worker_stats.c.worker_id.in_(list(worker_ids)),
    )
    return {r.worker_id: stats_from(r) for r in conn.execute(query).all()}


def put_worker_stats(conn: Connection, stats: WorkerStats, expected_version: int | None) -> None:
    keys = ("org_id", "task_type", "worker_id")
    _put(conn, worker_stats, keys, stats_row(stats), expected_version, "worker stats")


def stats_of_worker(conn: Connection, org_id: str, worker_id: str) -> list[WorkerStats]:
    query = (
        select(worker_stats)
        .where(worker_stats.c.org_id == org_id, worker_stats.c.worker_id == worker_id)
        .order_by(worker_stats.c.task_type)
    )
    return [stats_from(r) for r in conn.execute(query).all()]


def active_load(conn: Connection, org_id: str, worker_id: str) -> int:
    query = (
        select(func.count())
        .select_from(assignments.join(tasks, tasks.c.id == assignments.c.task_id))
        .where(
            tasks.c.org_id == org_id,
            tasks.c.status.in_(_EXPIRABLE),
            assignments.c.worker_id == worker_id,
            assignments.c.status == AssignmentStatus.ACTIVE.value,
        )
    )
    return int(conn.execute(query).scalar() or 0)


def add_samples(conn: Connection, samples: Sequence[AnswerSample]) -> None:
    conn.execute(insert(answer_samples), [s.model_dump() for s in samples])


def crowd_stats(
    conn: Connection, org_id: str, task_type: str, durations: int, labels: int
) -> WorkerStats:
    mine = and_(answer_samples.c.org_id == org_id, answer_samples.c.task_type == task_type)
    newest = answer_samples.c.seq.desc()
    timed = conn.execute(
        select(answer_samples.c.seconds)
        .where(mine, answer_samples.c.seconds.is_not(None))
        .order_by(newest)
        .limit(durations)
    ).scalars()
    recent = select(answer_samples.c.label).where(mine).order_by(newest).limit(labels).subquery()
    counted = conn.execute(
        select(recent.c.label, func.count())
        .where(recent.c.label.is_not(None))
        .group_by(recent.c.label)
    ).all()
    window = conn.execute(select(func.count()).select_from(recent)).scalar()
    return WorkerStats(
        org_id=org_id,
        worker_id="*",
        task_type=task_type,
        answers=int(window or 0),
        durations=tuple(reversed([float(x) for x in timed])),
        labels={label: int(n) for label, n in counted},
    )


# ---------------------------------------------------------------- policies and authority

_LATEST_POLICY = (
    select(policies)
    .where(policies.c.org_id == bindparam("org_id"))
    .order_by(policies.c.version.desc())
    .limit(1)
)


def get_policy(conn: Connection, org_id: str) -> Policy | None:
    row = conn.execute(_LATEST_POLICY, {"org_id": org_id}).first()
    return policy_from(row) if row is not None else None


def put_policy(conn: Connection, org_id: str, policy: Policy) -> None:
    current = get_policy(conn, org_id)
    if policy.version != (current.version + 1 if current else 1):
        raise ConcurrencyConflict("policy", org_id)
    row = {
        "org_id": org_id,
        "version": policy.version,
        "rules": [r.model_dump(mode="json") for r in policy.rules],
        "updated_at": policy.updated_at,
        "updated_by": policy.updated_by,
    }
    _put(conn, policies, ("org_id", "version"), row, None, "policy")


_GROUPS = (
    select(reviewer_groups)
    .where(reviewer_groups.c.org_id == bindparam("org_id"))
    .order_by(reviewer_groups.c.name)
)
_LIVE_STANDING = (
    select(standing_approvals)
    .where(
        standing_approvals.c.org_id == bindparam("org_id"),
        standing_approvals.c.tool == bindparam("tool"),
        standing_approvals.c.revoked_at.is_(None),
        standing_approvals.c.expires_at > bindparam("now"),
    )
    .order_by(standing_approvals.c.id)
)


def list_groups(conn: Connection, org_id: str) -> list[ReviewerGroup]:
    return [group_from(r) for r in conn.execute(_GROUPS, {"org_id": org_id}).all()]


def put_group(conn: Connection, group: ReviewerGroup, expected_version: int | None) -> None:
    keys = ("org_id", "name")
    _put(conn, reviewer_groups, keys, group_row(group), expected_version, "reviewer group")


def delete_group(conn: Connection, org_id: str, name: str, expected_version: int) -> None:
    gone = conn.execute(
        delete(reviewer_groups).where(
            reviewer_groups.c.org_id == org_id,
            reviewer_groups.c.name == name,
            reviewer_groups.c.version == expected_version,
        )
    )
    if gone.rowcount != 1:
        raise ConcurrencyConflict("reviewer group", f"{org_id}/{name}")


def get_standing(conn: Connection, org_id: str, approval_id: str) -> StandingApproval | None:
    row = conn.execute(
        select(standing_approvals).where(
            standing_approvals.c.id == approval_id, standing_approvals.c.org_id == org_id
        )
    ).first()
    return standing_from(row) if row is not None else None


def list_standing(
    conn: Connection, org_id: str, tool: str | None, active_at: datetime | None
) -> list[StandingApproval]:
    query = select(standing_approvals).where(standing_approvals.c.org_id == org_id)
    if tool is not None:
        query = query.where(standing_approvals.c.tool == tool)
    if active_at is not None:
        query = query.where(
            standing_approvals.c.revoked_at.is_(None), standing_approvals.c.expires_at > active_at
        )
    rows = conn.execute(query.order_by(standing_approvals.c.id)).all()
    return [standing_from(r) for r in rows]


def put_standing(
    conn: Connection, approval: StandingApproval, expected_version: int | None
) -> None:
    row = standing_row(approval)
    _put(conn, standing_approvals, ("id",), row, expected_version, "standing approval")


_POLICY_VERSION = select(func.max(policies.c.version)).where(
    policies.c.org_id == bindparam("org_id")
)


def policy_context(
    conn: Connection, org_id: str, tool: str, now: datetime, known_version: int | None
) -> PolicyContext:
    version = int(conn.execute(_POLICY_VERSION, {"org_id": org_id}).scalar() or 0)
    policy = None if version in (0, known_version) else get_policy(conn, org_id)
    live = conn.execute(_LIVE_STANDING, {"org_id": org_id, "tool": tool, "now": now}).all()
    return PolicyContext(
        version=policy.version if policy is not None else version,
        policy=policy,
        groups=list_groups(conn, org_id),
        standing=[standing_from(r) for r in live],
    )


def token_spent(conn: Connection, token_id: str) -> bool:
    query = select(decision_tokens.c.id).where(decision_tokens.c.id == token_id)
    return conn.execute(query).first() is not None


def spend_token(conn: Connection, org_id: str, token_id: str, task_id: str, at: datetime) -> None:
    row = {"id": token_id, "org_id": org_id, "task_id": task_id, "spent_at": at}
    _put(conn, decision_tokens, ("id",), row, None, "decision token")


# ---------------------------------------------------------------- the audit chains


def _head_upsert(make: Any) -> Any:
    new = make(audit_heads).values(org_id=bindparam("org_id"), seq=0, hash="")
    return new.on_conflict_do_update(
        index_elements=["org_id"], set_={"seq": audit_heads.c.seq}
    ).returning(audit_heads.c.seq, audit_heads.c.hash)


# The organisation's head, locked until the transaction ends (created when new): one
# statement, so concurrent writers queue on it and each links onto the last commit.
_LOCK_HEAD = {"postgresql": _head_upsert(pg_insert), "sqlite": _head_upsert(sqlite_insert)}
_INSERT_AUDIT = insert(audit_log)
_MOVE_HEAD = (
    update(audit_heads)
    .where(audit_heads.c.org_id == bindparam("where_org"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


Heads = dict[str, AuditHead]
"""The heads a store last sealed onto, by organisation: a guess, checked by the database."""

_COLUMNS = ("org_id", "seq", "kind", "task_id", "at", "body", "prev_hash", "hash")
_TYPES = ("VARCHAR", "BIGINT", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "TEXT", "VARCHAR", "VARCHAR")
_ON_GUESS: dict[int, Any] = {}


def _on_guess(count: int) -> Any:
    """PostgreSQL, one round trip: move the head on from where this store last left it
    (a guarded UPDATE, which also locks it) and, only if that matched, insert the entries."""
    statement = _ON_GUESS.get(count)
    if statement is None:
        rows = ", ".join(
            "("
            + ", ".join(f"CAST(:{c}{i} AS {t})" for c, t in zip(_COLUMNS, _TYPES, strict=True))
            + ")"
            for i in range(count)
        )
        statement = _ON_GUESS[count] = text(
            "WITH moved AS (UPDATE audit_heads SET seq = :new_seq, hash = :new_hash "
            "WHERE org_id = :org AND seq = :old_seq AND hash = :old_hash RETURNING org_id) "
            f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) SELECT * FROM (VALUES {rows}) "
            f"AS v ({', '.join(_COLUMNS)}) WHERE EXISTS (SELECT 1 FROM moved) RETURNING seq"
        )
    return statement


def _rows(sealed: Sequence[tuple[AuditEntry, str]]) -> list[dict[str, Any]]:
    return [
        {
            "org_id": e.org_id,
            "seq": e.seq,
            "kind": e.kind,
            "task_id": e.task_id,
            "at": e.at,
            "body": body,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e, body in sealed
    ]


def _seal_on_guess(
    conn: Connection, org_id: str, records: Sequence[AuditRecord], guess: AuditHead
) -> AuditHead | None:
    sealed = chain(records, guess)
    last = sealed[-1][0]
    params: dict[str, Any] = {
        "org": org_id,
        "old_seq": guess.seq,
        "old_hash": guess.hash,
        "new_seq": last.seq,
        "new_hash": last.hash,
    }
    for i, row in enumerate(_rows(sealed)):
        params.update({f"{c}{i}": v for c, v in row.items()})
    if not conn.execute(_on_guess(len(sealed)), params).all():
        return None  # another writer moved the head (or the guess was never committed)
    return AuditHead(org_id, last.seq, last.hash)


def seal_audit(
    conn: Connection,
    records: Sequence[AuditRecord],
    heads: Heads | None = None,
    events: Sequence[TaskEvent] = (),
) -> None:
    """Chain ``records`` onto their organisations' heads (in organisation order, so two
    transactions never wait for each other's heads) and move the heads on. The head is
    locked until the transaction ends, so concurrent writers queue on it and each links
    onto the last commit. On PostgreSQL, ``heads`` (this store's guesses) makes it one
    round trip when this store was the last to write.

    The transaction's task ``events`` are inserted here, each organisation's once its head
    is locked: their sequence numbers are drawn while no other writer of that organisation
    can commit, so an organisation's events commit in the order of their numbers. (Drawn
    earlier, a transaction holding a lower number could commit after one holding a higher,
    and a reader following ``seq`` would pass its events by for good.)"""
    by_org: dict[str, list[AuditRecord]] = {}
    for record in records:
        by_org.setdefault(record.org_id, []).append(record)
    events_of: dict[str, list[TaskEvent]] = {}
    for event in events:
        events_of.setdefault(event.org_id, []).append(event)
        by_org.setdefault(event.org_id, [])
    postgres = conn.dialect.name == "postgresql"
    lock = _LOCK_HEAD[conn.dialect.name]
    for org_id in sorted(by_org):
        if not by_org[org_id]:  # events with no audit record (never, from the engine)
            conn.execute(lock, {"org_id": org_id}).one()  # the head locked all the same
            append_events(conn, events_of[org_id])
            continue
        guess = heads.get(org_id) if heads is not None and postgres else None
        moved = _seal_on_guess(conn, org_id, by_org[org_id], guess) if guess else None
        if moved is None:
            row = conn.execute(lock, {"org_id": org_id}).one()
            head = AuditHead(org_id, int(row.seq), row.hash) if row.seq else None
            sealed = chain(by_org[org_id], head)
            conn.execute(_INSERT_AUDIT, _rows(sealed))
            last = sealed[-1][0]
            conn.execute(_MOVE_HEAD, {"where_org": org_id, "seq": last.seq, "hash": last.hash})
            moved = AuditHead(org_id, last.seq, last.hash)
        if heads is not None:
            heads[org_id] = moved
        if org_id in events_of:
            append_events(conn, events_of[org_id])


def audit_entries(conn: Connection, org_id: str, after: int, limit: int) -> list[AuditEntry]:
    query = (
        select(audit_log)
        .where(audit_log.c.org_id == org_id, audit_log.c.seq > after)
        .order_by(audit_log.c.seq)
        .limit(limit)
    )
    return [audit_from(r) for r in conn.execute(query).all()]


def audit_head(conn: Connection, org_id: str) -> AuditHead | None:
    row = conn.execute(select(audit_heads).where(audit_heads.c.org_id == org_id)).first()
    if row is None or not row.seq:
        return None
    return AuditHead(org_id, int(row.seq), row.hash)


def audit_orgs(conn: Connection) -> list[str]:
    query = select(audit_heads.c.org_id).where(audit_heads.c.seq > 0).order_by(audit_heads.c.org_id)
    return list(conn.execute(query).scalars())
