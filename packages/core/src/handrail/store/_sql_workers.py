"""The store's SQL for workers: profiles, per-task-type stats, active load and crowd samples."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    union_all,
)

from ..models import AssignmentStatus
from ..workers import DURATION_SAMPLES, AnswerSample, WorkerProfile, WorkerStats
from ._sql_ledger import _put
from ._sql_rows import stats_from, stats_row, worker_from, worker_row
from ._sql_tables import answer_samples, assignments, tasks, worker_stats, workers
from ._sql_tasks import _EXPIRABLE

_WORKER = select(workers).where(
    workers.c.org_id == bindparam("org_id"), workers.c.id == bindparam("worker_id")
)


def get_worker(conn: Connection, org_id: str, worker_id: str) -> WorkerProfile | None:
    row = conn.execute(_WORKER, {"org_id": org_id, "worker_id": worker_id}).first()
    return worker_from(row) if row is not None else None


def put_worker(conn: Connection, worker: WorkerProfile, expected_version: int | None) -> None:
    _put(conn, workers, ("org_id", "id"), worker_row(worker), expected_version, "worker")


def list_workers(conn: Connection, org_id: str) -> list[WorkerProfile]:
    rows = conn.execute(select(workers).where(workers.c.org_id == org_id).order_by(workers.c.id))
    return [worker_from(r) for r in rows.all()]


_STATS = (
    select(worker_stats)
    .where(
        worker_stats.c.org_id == bindparam("org_id"),
        worker_stats.c.task_type == bindparam("task_type"),
        worker_stats.c.worker_id.in_(bindparam("ids", expanding=True)),
    )
    .order_by(worker_stats.c.worker_id)
)


def get_worker_stats(
    conn: Connection, org_id: str, task_type: str, worker_ids: Sequence[str]
) -> dict[str, WorkerStats]:
    """Read, never locked: what a decision learns is added by :func:`learn` (on
    PostgreSQL an upsert that adds to the row), so one reviewer's concurrent decisions
    never queue behind each other's whole transactions for it."""
    params = {"org_id": org_id, "task_type": task_type, "ids": list(worker_ids)}
    return {r.worker_id: stats_from(r) for r in conn.execute(_STATS, params).all()}


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


_ADD_SAMPLES = insert(answer_samples)


def add_samples(conn: Connection, samples: Sequence[AnswerSample]) -> None:
    rows = [s.model_dump() for s in samples]
    conn.execute(_ADD_SAMPLES, rows[0] if len(rows) == 1 else rows)


# One statement on PostgreSQL: the crowd's sample and the worker's record, added to in
# place (counts summed, the newest durations kept, the label counted), so the row is held
# only from here to the commit, by nothing that read it first.
_LEARN_POSTGRES = text(
    """
WITH sample AS (
    INSERT INTO answer_samples (org_id, task_type, worker_id, seconds, label, at)
    VALUES (:org_id, :task_type, :worker_id, :seconds, CAST(:label AS text), :at)
)
INSERT INTO worker_stats AS s (
    org_id, task_type, worker_id, answers, gold_total, gold_correct, agreed, disagreed,
    durations, labels, updated_at, version
) VALUES (
    :org_id, :task_type, :worker_id, 1, :gold_total, :gold_correct, :agreed, :disagreed,
    CAST(:durations AS jsonb), CAST(:labels AS jsonb), :at, 1
)
ON CONFLICT (org_id, task_type, worker_id) DO UPDATE SET
    answers = s.answers + 1,
    gold_total = s.gold_total + EXCLUDED.gold_total,
    gold_correct = s.gold_correct + EXCLUDED.gold_correct,
    agreed = s.agreed + EXCLUDED.agreed,
    disagreed = s.disagreed + EXCLUDED.disagreed,
    durations = (
        SELECT COALESCE(jsonb_agg(kept.v ORDER BY kept.o), '[]'::jsonb)
        FROM (
            SELECT e.v, e.o
            FROM jsonb_array_elements(s.durations || EXCLUDED.durations)
                WITH ORDINALITY AS e(v, o)
            ORDER BY e.o DESC
            LIMIT :keep
        ) AS kept
    ),
    labels = CASE
        WHEN CAST(:label AS text) IS NULL THEN s.labels
        ELSE s.labels || jsonb_build_object(
            CAST(:label AS text), COALESCE((s.labels ->> CAST(:label AS text))::int, 0) + 1
        )
    END,
    updated_at = EXCLUDED.updated_at,
    version = s.version + 1
"""
)


def learn(
    conn: Connection,
    sample: AnswerSample,
    gold: bool | None,
    agreed: bool | None,
    known: WorkerStats | None,
    read: bool,
) -> WorkerStats | None:
    """Append ``sample`` to the crowd's record and fold it into its worker's stats.

    PostgreSQL adds to the row in one upsert (and returns None: the transaction no longer
    knows the record). SQLite, whose writer holds the database until it commits, rewrites
    the record it read (``known``, if ``read``; else it reads it now) and returns it."""
    if conn.dialect.name == "postgresql":
        seconds = sample.seconds
        conn.execute(
            _LEARN_POSTGRES,
            {
                **sample.model_dump(),
                "gold_total": int(gold is not None),
                "gold_correct": int(gold is True),
                "agreed": int(agreed is True),
                "disagreed": int(agreed is False),
                "durations": json.dumps([seconds] if seconds is not None else []),
                "labels": json.dumps({sample.label: 1} if sample.label is not None else {}),
                "keep": DURATION_SAMPLES,
            },
        )
        return None
    if not read:
        found = get_worker_stats(conn, sample.org_id, sample.task_type, [sample.worker_id])
        known = found.get(sample.worker_id)
    base = known or WorkerStats(
        org_id=sample.org_id, worker_id=sample.worker_id, task_type=sample.task_type
    )
    new = base.with_answer(
        seconds=sample.seconds, label=sample.label, gold=gold, agreed=agreed, at=sample.at
    ).model_copy(update={"version": known.version + 1 if known is not None else 1})
    put_worker_stats(conn, new, known.version if known is not None else None)
    add_samples(conn, [sample])
    return new


_MINE = and_(
    answer_samples.c.org_id == bindparam("org_id"),
    answer_samples.c.task_type == bindparam("task_type"),
)
_NEWEST = answer_samples.c.seq.desc()
_TIMED = (
    select(answer_samples.c.seq, answer_samples.c.seconds)
    .where(_MINE, answer_samples.c.seconds.is_not(None))
    .order_by(_NEWEST)
    .limit(bindparam("durations"))
    .subquery()
)
_RECENT = (
    select(answer_samples.c.label)
    .where(_MINE)
    .order_by(_NEWEST)
    .limit(bindparam("labels"))
    .subquery()
)
# One statement: the newest durations (part 0, with their order), and the newest answers
# counted by label (part 1; unlabelled ones too, for the window's size).
_CROWD = union_all(
    select(
        literal_column("0").label("part"),
        _TIMED.c.seq.label("seq"),
        _TIMED.c.seconds.label("seconds"),
        null().label("label"),
        literal_column("1").label("n"),
    ),
    select(literal_column("1"), null(), null(), _RECENT.c.label, func.count()).group_by(
        _RECENT.c.label
    ),
)


def crowd_stats(
    conn: Connection, org_id: str, task_type: str, durations: int, labels: int
) -> WorkerStats:
    params = {"org_id": org_id, "task_type": task_type, "durations": durations, "labels": labels}
    timed: list[tuple[int, float]] = []
    by_label: list[tuple[str | None, int]] = []
    for part, seq, seconds, label, n in conn.execute(_CROWD, params):
        if part == 0:
            timed.append((int(seq), float(seconds)))
        else:
            by_label.append((label, int(n)))
    window = sum(n for _, n in by_label)  # unlabelled answers count in the window too
    counted = [(label, n) for label, n in by_label if label is not None]
    return WorkerStats(
        org_id=org_id,
        worker_id="*",
        task_type=task_type,
        answers=int(window or 0),
        durations=tuple(seconds for _, seconds in sorted(timed)),
        labels={label: int(n) for label, n in counted},
    )
