"""The worker contract: profiles and stats under optimistic versions, active load, crowd
samples."""

from __future__ import annotations

import pytest

from ..clock import ManualClock
from ..engine import Engine
from ..errors import ConcurrencyConflict
from ..models import Decision, RiskTier
from ..store import Store
from ..workers import AnswerSample, WorkerProfile, WorkerStats
from ._conformance_support import AGENT, ALICE


class WorkerContract:
    """Part of :class:`~handrail.testing.StoreConformance`; needs its ``store``, ``store_factory``,
    ``clock`` and ``engine`` fixtures."""

    # ---------------------------------------------------------------- the worker contract

    async def test_worker_profiles_and_stats(self, store: Store, clock: ManualClock) -> None:
        alice = WorkerProfile(
            org_id="org-a",
            id="alice",
            skills=frozenset({"refund"}),
            trust_tier=RiskTier.HIGH,
            capacity=2,
            cost_minor=5,
        )
        stats = WorkerStats(
            org_id="org-a",
            worker_id="alice",
            task_type="refund",
            answers=3,
            gold_total=2,
            gold_correct=1,
            agreed=1,
            durations=(3.5, 9.0),
            labels={"yes": 3},
            updated_at=clock.now(),
        )
        async with store.transaction() as tx:
            await tx.put_worker(alice, expected_version=None)
            await tx.put_worker(alice.model_copy(update={"org_id": "org-b"}), expected_version=None)
            await tx.put_worker_stats(stats, expected_version=None)
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.put_worker(alice, expected_version=None)
        busier = stats.with_answer(seconds=4.0, label="no", agreed=False, at=clock.now())
        async with store.transaction() as tx:
            await tx.put_worker(
                alice.model_copy(update={"capacity": 3, "version": 2}), expected_version=1
            )
            await tx.put_worker_stats(busier, expected_version=1)
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.put_worker_stats(busier, expected_version=1)  # stale: it is at 2
        async with store.transaction(readonly=True) as tx:
            profile = await tx.get_worker("org-a", "alice")
            assert profile is not None and (profile.capacity, profile.skills) == (
                3,
                frozenset({"refund"}),
            )
            assert [w.org_id for w in await tx.list_workers("org-b")] == ["org-b"]
            assert await tx.get_worker("org-a", "bob") is None
            got = await tx.worker_stats("org-a", "refund", ["alice", "bob"])
            assert got == {"alice": busier}
            assert await tx.worker_stats("org-a", "other", ["alice"]) == {}

    async def test_active_load_counts_open_tasks_only(self, engine: Engine) -> None:
        tasks = [
            await engine.create(AGENT, {"kind": "review", "action": {"name": "pay"}})
            for _ in range(3)
        ]
        for task in tasks:
            await engine.claim(ALICE, task.id)
        await engine.decide(ALICE, tasks[0].id, Decision.approve())
        await engine.release(ALICE, tasks[1].id)
        async with engine.store.transaction(readonly=True) as tx:
            assert await tx.active_load("org-a", "alice") == 1
            assert await tx.active_load("org-a", "bob") == 0
            assert await tx.active_load("org-b", "alice") == 0

    async def test_crowd_samples_append_and_summarise(
        self, store: Store, clock: ManualClock
    ) -> None:
        def sample(n: int, label: str | None, task_type: str = "spam") -> AnswerSample:
            return AnswerSample(
                org_id="org-a",
                task_type=task_type,
                worker_id=f"w{n}",
                seconds=None if n % 3 == 0 else float(n),
                label=label,
                at=clock.now(),
            )

        async with store.transaction() as tx:
            await tx.add_samples([sample(n, "yes" if n % 2 else "no") for n in range(1, 8)])
            await tx.add_samples([sample(99, "yes", task_type="kyc")])
        async with store.transaction() as tx:
            await tx.add_samples([sample(8, None)])
        async with store.transaction(readonly=True) as tx:
            crowd = await tx.crowd_stats("org-a", "spam")
            recent = await tx.crowd_stats("org-a", "spam", durations=2, labels=3)
            other = await tx.crowd_stats("org-b", "spam")
        assert crowd.worker_id == "*" and crowd.answers == 8
        assert crowd.durations == (1.0, 2.0, 4.0, 5.0, 7.0, 8.0)  # oldest first
        assert crowd.labels == {"yes": 4, "no": 3}
        assert recent.durations == (7.0, 8.0)
        assert recent.labels == {"yes": 1, "no": 1}  # samples 6, 7, 8 (8 has none)
        assert (other.answers, other.labels) == (0, {})
