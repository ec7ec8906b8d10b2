"""The worker contract: profiles and stats under optimistic versions, active load, crowd
samples."""

from __future__ import annotations

import pytest

from ..clock import ManualClock
from ..engine import Engine
from ..errors import ConcurrencyConflict
from ..models import Decision, RiskTier
from ..store import Store
from ..workers import DURATION_SAMPLES, AnswerSample, WorkerProfile, WorkerStats
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

    async def test_learning_adds_to_a_workers_record(
        self, store: Store, clock: ManualClock
    ) -> None:
        def sample(seconds: float | None, label: str | None, worker: str = "alice") -> AnswerSample:
            return AnswerSample(
                org_id="org-a",
                task_type="refund",
                worker_id=worker,
                seconds=seconds,
                label=label,
                at=clock.now(),
            )

        async with store.transaction() as tx:  # a first answer makes the record
            await tx.learn(sample(3.0, "yes"), gold=True, agreed=True)
        async with store.transaction() as tx:  # two in one transaction, read in between
            assert (await tx.worker_stats("org-a", "refund", ["alice"]))["alice"].answers == 1
            await tx.learn(sample(None, "no"), gold=False, agreed=False)
            await tx.learn(sample(5.0, None), gold=None, agreed=None)
            seen = await tx.worker_stats("org-a", "refund", ["alice"])
            assert seen["alice"].answers == 3
        async with store.transaction(readonly=True) as tx:
            got = (await tx.worker_stats("org-a", "refund", ["alice", "bob"]))["alice"]
            crowd = await tx.crowd_stats("org-a", "refund")
        assert (got.answers, got.gold_total, got.gold_correct) == (3, 2, 1)
        assert (got.agreed, got.disagreed) == (1, 1)
        assert got.durations == (3.0, 5.0) and got.labels == {"yes": 1, "no": 1}
        assert got.version == 3 and got.updated_at == clock.now()
        assert crowd.answers == 3 and crowd.durations == (3.0, 5.0)

    async def test_learning_keeps_the_newest_durations(
        self, store: Store, clock: ManualClock
    ) -> None:
        stats = WorkerStats(
            org_id="org-a",
            worker_id="alice",
            task_type="refund",
            answers=DURATION_SAMPLES,
            durations=tuple(float(n) for n in range(DURATION_SAMPLES)),
        )
        async with store.transaction() as tx:
            await tx.put_worker_stats(stats, expected_version=None)
        async with store.transaction() as tx:
            sample = AnswerSample(
                org_id="org-a",
                task_type="refund",
                worker_id="alice",
                seconds=999.0,
                label="yes",
                at=clock.now(),
            )
            await tx.learn(sample, gold=None, agreed=True)
        async with store.transaction(readonly=True) as tx:
            got = (await tx.worker_stats("org-a", "refund", ["alice"]))["alice"]
        assert len(got.durations) == DURATION_SAMPLES
        assert got.durations[0] == 1.0 and got.durations[-1] == 999.0
        assert (got.answers, got.labels, got.version) == (DURATION_SAMPLES + 1, {"yes": 1}, 2)

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
