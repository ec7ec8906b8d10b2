"""Push routing: eligibility and ranking."""

from __future__ import annotations

import random

from handrail import RiskTier
from handrail.routing import Router
from handrail.workers import WorkerProfile, mad_z, reliability


def worker(id: str, **kw: object) -> WorkerProfile:
    return WorkerProfile.model_validate({"org_id": "o", "id": id, **kw})


def test_only_eligible_workers_are_picked() -> None:
    router = Router()
    router.upsert(worker("refunds", skills={"refund"}, trust_tier="high"), reliability=0.7)
    router.upsert(worker("generalist", trust_tier="low"), reliability=0.99)
    router.upsert(
        worker("pricey", skills={"refund"}, trust_tier="critical", cost_minor=500), reliability=0.99
    )
    router.upsert(
        worker("away", skills={"refund"}, trust_tier="critical", active=False), reliability=1.0
    )
    assert router.pick("o", "refund", RiskTier.HIGH, reward_minor=100) == "refunds"
    assert router.pick("o", "refund", RiskTier.LOW, reward_minor=100) == "generalist"
    assert router.pick("o", "refund", RiskTier.CRITICAL, reward_minor=1_000) == "pricey"
    assert router.pick("o", "refund", RiskTier.CRITICAL, reward_minor=100) is None
    assert router.pick("o", "kyc", RiskTier.HIGH, reward_minor=100) is None
    assert router.pick("other-org", "refund", RiskTier.LOW) is None
    assert router.pick("o", "refund", RiskTier.HIGH, reward_minor=100, exclude={"refunds"}) is None


def test_load_capacity_and_duration() -> None:
    router = Router()
    router.upsert(worker("a", capacity=2), reliability=0.9)
    router.upsert(worker("b", capacity=2), reliability=0.8, durations={"label": 600.0})
    assert router.pick("o", "label", RiskTier.LOW) == "a"
    router.adjust_load("o", "a", +1)  # half full: 0.9 - 0.25 < 0.8
    assert router.pick("o", "label", RiskTier.LOW) == "b"
    assert router.pick("o", "label", RiskTier.LOW, seconds_left=60) == "a"  # b is too slow
    router.adjust_load("o", "a", +1)
    assert router.pick("o", "label", RiskTier.LOW, seconds_left=60) is None  # a is full
    router.set_load("o", "a", 0)
    router.set_reliability("o", "b", 0.99)
    assert router.pick("o", "label", RiskTier.LOW) == "b"
    router.remove("o", "b")
    assert router.pick("o", "label", RiskTier.LOW) == "a"
    assert router.load("o", "a") == 0


def test_cost_counts_against_the_reward() -> None:
    router = Router(cost_weight=0.5)
    router.upsert(worker("cheap", cost_minor=0), reliability=0.80)
    router.upsert(worker("dear", cost_minor=90), reliability=0.95)
    assert router.pick("o", "x", RiskTier.LOW, reward_minor=100) == "cheap"  # 0.95 - 0.45
    assert router.pick("o", "x", RiskTier.LOW, reward_minor=10_000) == "dear"


def test_the_best_eligible_worker_always_wins() -> None:
    """Against a brute-force scan, over many random picks and load changes."""
    rng = random.Random(3)
    router = Router()
    profiles = {}
    loads: dict[str, int] = {}
    rel: dict[str, float] = {}
    for i in range(300):
        p = worker(
            f"w{i}",
            skills=set(rng.sample(["a", "b", "c"], rng.randint(0, 2))),
            trust_tier=rng.choice(list(RiskTier)),
            capacity=rng.randint(1, 3),
            cost_minor=rng.choice([0, 5, 50]),
        )
        profiles[p.id], loads[p.id], rel[p.id] = p, 0, rng.uniform(0.5, 1.0)
        router.upsert(p, reliability=rel[p.id])
    for _ in range(2_000):
        task_type, tier, reward = (
            rng.choice("abc"),
            rng.choice(list(RiskTier)),
            rng.choice([0, 20, 100]),
        )
        scored = [
            (
                rel[w]
                - 0.5 * loads[w] / p.capacity
                - (0.2 * p.cost_minor / reward if reward else 0),
                w,
            )
            for w, p in profiles.items()
            if p.can_do(task_type, tier) and loads[w] < p.capacity and p.cost_minor <= reward
        ]
        picked = router.pick("o", task_type, tier, reward_minor=reward)
        if not scored:
            assert picked is None
            continue
        assert picked is not None
        best = max(s for s, _ in scored)
        got = next(s for s, w in scored if w == picked)
        assert abs(got - best) < 1e-9
        loads[picked] += 1
        router.adjust_load("o", picked, +1)
        if rng.random() < 0.5:
            done = rng.choice([w for w, n in loads.items() if n] or [picked])
            loads[done] -= 1
            router.adjust_load("o", done, -1)


def test_reliability_and_robust_z() -> None:
    assert reliability(0, 0, 0, 0) == 0.75
    assert reliability(10, 10, 0, 0) > 0.95
    assert reliability(0, 10, 0, 10) < 0.15
    sample = [60.0 + i for i in range(20)]
    z = mad_z(5.0, sample)
    assert z is not None and z < -3.5
    assert mad_z(5.0, sample[:9]) is None
    assert mad_z(5.0, [60.0] * 20) is None
