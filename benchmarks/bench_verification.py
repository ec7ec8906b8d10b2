"""Routing, the verification pipeline, and Dawid–Skene.

- **Assignment latency**: a router holding 10,000 workers (skills among 50 task types,
  every trust tier, capacity 1–5, a cost) assigns 100,000 open tasks one by one, while
  workers finish tasks at random; each pick plus its load update is timed. The anchor is
  HumanRail's advertised assignment time, 50 ms.
- **Push through the engine**: the same, but each assignment is a real ``Engine.assign``
  transaction on a MemoryStore, through a ``Dispatcher``.
- **Pipeline**: full judgment lifecycles per second with the default pipeline (high risk:
  two answers, consensus, gold, anomaly) against the pass-through verifier, same run.
- **Dawid–Skene**: one-coin EM over 100,000 labels (20,000 items × 5 labels, 200 workers).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from _common import AGENT, ORG, Row, percentile, ratio, reviewer, row, table
from handrail import Engine, MemoryStore, PassThroughVerifier, Principal, RiskTier, Role
from handrail.consensus import dawid_skene
from handrail.dispatch import Dispatcher
from handrail.pipeline import Pipeline
from handrail.routing import Router
from handrail.workers import WorkerProfile

BENCH = "verification"
HUMANRAIL_ASSIGN_MS = 50.0
TYPES = [f"type-{i}" for i in range(50)]
TIERS = list(RiskTier)
ADMIN = Principal(org_id=ORG, id="root", roles=frozenset({Role.ADMIN}))


def _profiles(n: int, rng: random.Random) -> list[WorkerProfile]:
    return [
        WorkerProfile(
            org_id=ORG,
            id=f"w{i}",
            skills=frozenset(rng.sample(TYPES, rng.randint(0, 4))),
            trust_tier=rng.choice(TIERS),
            capacity=rng.randint(1, 5),
            cost_minor=rng.choice([0, 5, 10, 25, 50]),
        )
        for i in range(n)
    ]


def routing(workers: int, tasks: int) -> list[float]:
    """Seconds per pick (and load update) over ``tasks`` assignments."""
    rng = random.Random(11)
    router = Router()
    for p in _profiles(workers, rng):
        router.upsert(p, reliability=rng.uniform(0.5, 0.99))
    busy: list[str] = []
    samples = []
    for _ in range(tasks):
        task_type, tier, reward = rng.choice(TYPES), rng.choice(TIERS), rng.choice([0, 20, 50, 100])
        started = time.perf_counter()
        worker = router.pick(ORG, task_type, tier, reward_minor=reward, seconds_left=600.0)
        if worker is not None:
            router.adjust_load(ORG, worker, +1)
        samples.append(time.perf_counter() - started)
        if worker is not None:
            busy.append(worker)
        if busy and rng.random() < 0.5:  # somebody finishes a task
            router.adjust_load(ORG, busy.pop(rng.randrange(len(busy))), -1)
    return samples


async def pushed(workers: int, tasks: int) -> list[float]:
    """Seconds per ``Dispatcher.dispatch`` (pick + the assign transaction)."""
    rng = random.Random(12)
    engine = Engine(MemoryStore(), verifier=PassThroughVerifier())
    for p in _profiles(workers, rng):
        await engine.put_worker(ADMIN, p)
    dispatcher = Dispatcher(engine, ORG)
    await dispatcher.load()
    samples = []
    for _ in range(tasks):
        task = await engine.create(
            AGENT,
            {
                "kind": "judgment",
                "output_schema": {"type": "boolean"},
                "task_type": rng.choice(TYPES),
                "risk_tier": rng.choice(TIERS).value,
            },
        )
        started = time.perf_counter()
        await dispatcher.dispatch(task)
        samples.append(time.perf_counter() - started)
    return samples


async def lifecycles(engine: Engine, seconds: float) -> float:
    spec = {
        "kind": "judgment",
        "risk_tier": "high",
        "redundancy": 2,  # what the high tier asks for; the pass-through verifier too
        "output_schema": {"type": "object", "properties": {"label": {"enum": ["a", "b", "c"]}}},
    }
    a, b = reviewer("a"), reviewer("b")
    done = 0
    until = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < until:
        task = await engine.create(AGENT, spec)
        for worker in (a, b):
            await engine.claim(worker, task.id)
            await engine.submit(worker, task.id, {"label": "a"})
        done += 1
    return done / (time.perf_counter() - started)


def labels(items: int, per_item: int, workers: int) -> list[tuple[int, int, int]]:
    rng = random.Random(13)
    accuracy = [rng.uniform(0.55, 0.95) for _ in range(workers)]
    out = []
    for item in range(items):
        truth = rng.randrange(4)
        for w in rng.sample(range(workers), per_item):
            right = rng.random() < accuracy[w]
            out.append((item, w, truth if right else (truth + rng.randint(1, 3)) % 4))
    return out


async def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    anchor = f"HumanRail's advertised {HUMANRAIL_ASSIGN_MS:.0f} ms"
    picks = routing(10_000, 10_000 if quick else 100_000)
    workers = 2_000 if quick else 10_000
    pushes = await pushed(workers, 300 if quick else 1_000)
    for what, label, samples in (
        (f"router: assignment {{q}}, 10,000 workers, {len(picks):,} tasks", "router pick", picks),
        (
            f"engine push (pick + assign transaction) {{q}}, {workers:,} workers",
            "engine push (pick + assign transaction)",
            pushes,
        ),
    ):
        for q in (50, 99):
            ms = percentile(samples, q) * 1e3
            rows.append(
                row(
                    BENCH,
                    what.format(q=f"p{q}"),
                    ms,
                    "ms",
                    anchor=anchor,
                    ratio=ratio(ms, HUMANRAIL_ASSIGN_MS),
                    chart="routing",
                    label=label,
                    series=f"p{q}",
                )
            )
    rows.append(
        row(
            BENCH,
            "HumanRail's advertised assignment time (a published figure, not measured here)",
            HUMANRAIL_ASSIGN_MS,
            "ms",
            chart="routing",
            label="HumanRail, as advertised",
            series="published",
        )
    )

    span = 0.75 if quick else 4.0
    plain = await lifecycles(Engine(MemoryStore(), verifier=PassThroughVerifier()), span)
    piped = await lifecycles(Engine(MemoryStore(), verifier=Pipeline()), span)
    rows.append(
        row(BENCH, "lifecycles/s, high risk, pass-through verifier (MemoryStore)", plain, "tasks/s")
    )
    rows.append(
        row(
            BENCH,
            "lifecycles/s, high risk, full pipeline (MemoryStore)",
            piped,
            "tasks/s",
            anchor="pass-through verifier",
            ratio=ratio(piped, plain),
        )
    )

    data = labels(4_000 if quick else 20_000, 5, 200)
    started = time.perf_counter()
    result = dawid_skene(data)
    took = time.perf_counter() - started
    rows.append(
        row(
            BENCH,
            f"Dawid–Skene on {len(data):,} labels ({result.iterations} iterations)",
            took * 1e3,
            "ms",
        )
    )
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(run("--quick" in sys.argv))))
