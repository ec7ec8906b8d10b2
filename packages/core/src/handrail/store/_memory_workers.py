"""A memory transaction's workers: profiles, per-task-type stats and crowd samples."""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Sequence

from ..workers import AnswerSample, WorkerProfile, WorkerStats
from ._memory_base import _TransactionBase
from ._memory_tables import _key


class _MemoryWorkers(_TransactionBase):
    """Workers, for :class:`~handrail.store.MemoryStore`'s transactions."""

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

    async def learn(self, sample: AnswerSample, *, gold: bool | None, agreed: bool | None) -> None:
        self._writable()
        key = _key(sample.org_id, sample.task_type, sample.worker_id)
        with self._store._lock:
            old = self._stats.get(key, self._store._stats.rows.get(key))
            base = old or WorkerStats(
                org_id=sample.org_id, worker_id=sample.worker_id, task_type=sample.task_type
            )
            new = base.with_answer(
                seconds=sample.seconds, label=sample.label, gold=gold, agreed=agreed, at=sample.at
            )
            version = old.version + 1 if old is not None else 1
            self._stats.put(
                key,
                new.model_copy(update={"version": version}),
                old.version if old is not None else None,
            )
        self._samples.append(sample)

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
