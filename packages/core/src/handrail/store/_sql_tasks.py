"""The store's SQL for tasks and their history: reads, inserts, versioned updates that rewrite
only changed assignments, the queue, the due lists and the change feed. ``seen`` maps task
ids to the assignments read in the current transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..errors import ConcurrencyConflict
from ..models import RISK_RANK, Assignment, AssignmentStatus, Kind, RiskTier, Task, TaskEvent
from ._protocol import Change, TaskQuery
from ._sql_rows import assignment_rows, event_from, event_row, task_from, task_row
from ._sql_tables import assignments, task_events, tasks

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
_HELD = ("worker_id", "status", "claimed_at", "submitted_at", "released_at", "output", "position")


def _with_assignments(*where: Any) -> Any:
    """One task with its assignments in one statement: a row per assignment (or one row
    with none), the assignment's columns named ``a_<column>``."""
    return (
        select(tasks, *(assignments.c[c].label(f"a_{c}") for c in _HELD))
        .select_from(tasks.outerjoin(assignments, assignments.c.task_id == tasks.c.id))
        .where(*where)
        .order_by(assignments.c.position)
    )


_ONE_BY_ID = _with_assignments(
    tasks.c.id == bindparam("task_id"), tasks.c.org_id == bindparam("org_id")
)
_ONE_BY_KEY = _with_assignments(
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
# A taken id or idempotency key inserts nothing (and returns no row) instead of failing:
# no savepoint is needed to go on after it.
_INSERT_TASK = {
    "postgresql": pg_insert(tasks).on_conflict_do_nothing().returning(tasks.c.id),
    "sqlite": sqlite_insert(tasks).on_conflict_do_nothing().returning(tasks.c.id),
}
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


def _one(conn: Connection, seen: Seen, query: Any, params: dict[str, str]) -> Task | None:
    rows = conn.execute(query, params).all()
    if not rows:
        return None
    held = [
        SimpleNamespace(**{c: getattr(r, f"a_{c}") for c in _HELD})
        for r in rows
        if r.a_position is not None
    ]
    task = task_from(rows[0], held)
    seen[task.id] = task.assignments
    return task


def get_task(conn: Connection, seen: Seen, org_id: str, task_id: str) -> Task | None:
    return _one(conn, seen, _ONE_BY_ID, {"task_id": task_id, "org_id": org_id})


def find_by_key(conn: Connection, seen: Seen, org_id: str, key: str) -> Task | None:
    return _one(conn, seen, _ONE_BY_KEY, {"org_id": org_id, "key": key})


def insert_task(conn: Connection, seen: Seen, task: Task) -> None:
    if conn.execute(_INSERT_TASK[conn.dialect.name], task_row(task)).first() is None:
        raise ConcurrencyConflict("task", task.id)  # the id or the idempotency key is taken
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
