"""Push routing: pick the best worker for a task, fast, from an in-memory index.

Eligible workers have the task's type among their skills (or no skills: generalists), a
trust tier at least the task's risk tier, a free slot (load < capacity), a cost within the
reward, and a predicted time on task within what is left of the SLA. Among them the
highest score wins::

    score = reliability − load_weight · load / capacity − cost_weight · cost / reward

Workers sit in heaps keyed by (organisation, skill, tier they may serve, cost bucket),
ordered by the score without its cost term (cost depends on the task's reward). A pick
searches the heaps branch-and-bound: a heap's top, less its bucket's least cost, bounds
every score below it, so the search stops once nothing left can beat the best found: the
pick is exact, and a few heap operations rather than a scan of every worker. A change to
a worker (load, reliability, profile) bumps its version and pushes a fresh entry; stale
entries are dropped when they surface.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .models import RISK_RANK, RiskTier
from .workers import WorkerProfile

__all__ = ["Router"]

ANY_SKILL = "*"


@dataclass
class _Worker:
    profile: WorkerProfile
    reliability: float
    load: int
    durations: dict[str, float] = field(default_factory=dict)
    version: int = 0


_Entry = tuple[float, int, str, int]  # (-score, tie-break, worker id, version)
_Key = tuple[str, str, int, int]  # (org, skill, risk rank served, cost bucket)


def _bucket(cost_minor: int) -> int:
    """Costs by powers of two: bucket b holds costs below 2**b (0 holds only 0)."""
    return cost_minor.bit_length()


class Router:
    """Who gets the next task. Keep it current with :meth:`upsert`, :meth:`set_load`,
    :meth:`adjust_load` and :meth:`set_reliability`; ask it with :meth:`pick`."""

    def __init__(self, *, load_weight: float = 0.5, cost_weight: float = 0.2) -> None:
        self.load_weight = load_weight
        self.cost_weight = cost_weight
        self._workers: dict[tuple[str, str], _Worker] = {}
        self._heaps: dict[_Key, list[_Entry]] = {}
        self._buckets: dict[tuple[str, str, int], set[int]] = {}
        self._tie = itertools.count()

    def __len__(self) -> int:
        return len(self._workers)

    def _score(self, w: _Worker, reward_minor: int = 0) -> float:
        score = w.reliability - self.load_weight * w.load / w.profile.capacity
        if reward_minor > 0:
            score -= self.cost_weight * w.profile.cost_minor / reward_minor
        return score

    def _keys(self, profile: WorkerProfile) -> list[_Key]:
        skills = profile.skills or {ANY_SKILL}
        ranks = range(RISK_RANK[profile.trust_tier] + 1)
        bucket = _bucket(profile.cost_minor)
        return [(profile.org_id, s, r, bucket) for s in skills for r in ranks]

    def _push(self, w: _Worker) -> None:
        w.version += 1
        if not w.profile.active or w.load >= w.profile.capacity:
            return  # surfaces again when its load drops
        entry = (-self._score(w), next(self._tie), w.profile.id, w.version)
        for key in self._keys(w.profile):
            self._buckets.setdefault(key[:3], set()).add(key[3])
            heap = self._heaps.setdefault(key, [])
            heapq.heappush(heap, entry)
            if len(heap) > 64 and len(heap) > 4 * len(self._workers):
                self._rebuild(key)

    def _rebuild(self, key: _Key) -> None:
        live = [e for e in self._heaps[key] if self._live(key[0], e)]
        heapq.heapify(live)
        self._heaps[key] = live

    def _live(self, org: str, entry: _Entry) -> bool:
        w = self._workers.get((org, entry[2]))
        return w is not None and w.version == entry[3]

    # ---------------------------------------------------------------- keeping it current

    def upsert(
        self,
        profile: WorkerProfile,
        *,
        reliability: float = 0.75,
        load: int = 0,
        durations: Mapping[str, float] | None = None,
    ) -> None:
        """Add or replace a worker (``durations``: median seconds on task by task type)."""
        current = self._workers.get((profile.org_id, profile.id))
        w = _Worker(profile, reliability, load, dict(durations or {}))
        if current is not None:
            w.version = current.version
        self._workers[(profile.org_id, profile.id)] = w
        self._push(w)

    def remove(self, org_id: str, worker_id: str) -> None:
        self._workers.pop((org_id, worker_id), None)

    def adjust_load(self, org_id: str, worker_id: str, delta: int) -> None:
        w = self._workers.get((org_id, worker_id))
        if w is not None:
            w.load = max(w.load + delta, 0)
            self._push(w)

    def set_load(self, org_id: str, worker_id: str, load: int) -> None:
        w = self._workers.get((org_id, worker_id))
        if w is not None:
            w.load = max(load, 0)
            self._push(w)

    def set_reliability(self, org_id: str, worker_id: str, value: float) -> None:
        w = self._workers.get((org_id, worker_id))
        if w is not None:
            w.reliability = value
            self._push(w)

    def set_duration(self, org_id: str, worker_id: str, task_type: str, seconds: float) -> None:
        w = self._workers.get((org_id, worker_id))
        if w is not None:
            w.durations[task_type] = seconds

    def load(self, org_id: str, worker_id: str) -> int | None:
        w = self._workers.get((org_id, worker_id))
        return w.load if w is not None else None

    # ---------------------------------------------------------------- choosing

    def pick(
        self,
        org_id: str,
        task_type: str,
        risk_tier: RiskTier,
        *,
        reward_minor: int = 0,
        seconds_left: float | None = None,
        exclude: Collection[str] = (),
    ) -> str | None:
        """The best eligible worker for a task, or None. Does not change any load: call
        :meth:`adjust_load` once the assignment is made."""
        rank = RISK_RANK[risk_tier]
        affordable = _bucket(reward_minor)  # higher buckets cost more than the reward
        keys = [
            (org_id, skill, rank, bucket)
            for skill in (task_type, ANY_SKILL)
            for bucket in self._buckets.get((org_id, skill, rank), ())
            if bucket <= affordable
        ]
        best: tuple[float, str] | None = None
        passed: list[tuple[_Key, _Entry]] = []
        try:
            for key in keys:
                best = self._search(
                    key, best, reward_minor, seconds_left, exclude, task_type, passed
                )
        finally:
            for key, entry in passed:  # taken out to look further down: put them back
                heapq.heappush(self._heaps[key], entry)
        return best[1] if best is not None else None

    def _search(
        self,
        key: _Key,
        best: tuple[float, str] | None,
        reward_minor: int,
        seconds_left: float | None,
        exclude: Collection[str],
        task_type: str,
        passed: list[tuple[_Key, _Entry]],
    ) -> tuple[float, str] | None:
        """Improve on ``best`` from one heap. Its top bounds every score below it (less the
        bucket's least cost), so the search stops as soon as nothing left can win."""
        heap = self._heaps.get(key)
        bucket = key[3]
        least_cost = 0 if bucket == 0 else 1 << (bucket - 1)
        cost_floor = self.cost_weight * least_cost / reward_minor if reward_minor else 0.0
        while heap:
            entry = heap[0]
            w = self._workers.get((key[0], entry[2]))
            if w is None or w.version != entry[3]:
                heapq.heappop(heap)  # stale: dropped for good
                continue
            if best is not None and -entry[0] - cost_floor <= best[0]:
                break
            passed.append((key, heapq.heappop(heap)))
            predicted = w.durations.get(task_type)
            fits = (
                entry[2] not in exclude
                and w.profile.cost_minor <= reward_minor
                and (seconds_left is None or predicted is None or predicted <= seconds_left)
            )
            if fits:
                score = self._score(w, reward_minor)
                if best is None or score > best[0]:
                    best = (score, entry[2])
        return best
