"""The store's SQL for workers: profiles, per-task-type stats, active load and crowd samples."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, func, insert, select

from ..models import AssignmentStatus
from ..workers import AnswerSample, WorkerProfile, WorkerStats
from ._sql_ledger import _put
from ._sql_rows import stats_from, stats_row, worker_from, worker_row
from ._sql_tables import answer_samples, assignments, tasks, worker_stats, workers
from ._sql_tasks import _EXPIRABLE


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
    conn: Connection, org_id: str, task_type: str, worker_ids: Sequence[str], lock: bool = False
) -> dict[str, WorkerStats]:
    """With ``lock`` (a write transaction), the rows are locked until it ends, in worker
    order: every decision rewrites its reviewer's row, so one reviewer's concurrent
    decisions queue here rather than all reading one version and all but one rolling
    back on the version check (PostgreSQL; SQLite has one writer at a time anyway)."""
    query = (
        select(worker_stats)
        .where(
            worker_stats.c.org_id == org_id,
            worker_stats.c.task_type == task_type,
            worker_stats.c.worker_id.in_(list(worker_ids)),
        )
        .order_by(worker_stats.c.worker_id)
    )
    if lock:
        query = query.with_for_update()
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
    by_label = conn.execute(select(recent.c.label, func.count()).group_by(recent.c.label)).all()
    window = sum(int(n) for _, n in by_label)  # unlabelled answers count in the window too
    counted = [(label, n) for label, n in by_label if label is not None]
    return WorkerStats(
        org_id=org_id,
        worker_id="*",
        task_type=task_type,
        answers=int(window or 0),
        durations=tuple(reversed([float(x) for x in timed])),
        labels={label: int(n) for label, n in counted},
    )
