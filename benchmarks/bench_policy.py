"""Policy evaluation, and what a policy costs a create.

- **Evaluation per review, 1,000 rules**: ``CompiledPolicy.evaluate`` on varied reviews.
  *Indexed*: a realistic policy, rules naming tools (most by exact name, some by glob) with
  conditions on the arguments; the rule that decides sits anywhere. *Worst case*: every
  rule a ``*`` glob with a condition that is false, so all 1,000 are evaluated before the
  default ask. Anchored on the same run's review create on a MemoryStore without a policy.
- **Compile**: the first review after a policy change compiles it (once per version).
- **Audit verification**: entries re-hashed per second when verifying an organisation's
  chain on a SQLite file (reviews created and decided first: four entries each).
- **Create with a 1,000-rule policy** against the same store without one, per store:
  microseconds per review create (one coroutine), interleaved rounds, median. The rules
  all ``ask`` (with their conditions, groups of none), so both sides post the same task
  and the difference is what judging it costs: reading the policy's version, groups and
  standing approvals, and evaluating the candidates.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from _common import (
    AGENT,
    NO_POSTGRES,
    ORG,
    STORE_LABELS,
    Row,
    StoreKind,
    open_store,
    postgres_available,
    ratio,
    row,
    table,
)
from handrail import Engine, Principal, Role
from handrail.policy import CompiledPolicy, Policy, Subject

BENCH = "policy"
ADMIN = Principal(org_id=ORG, id="root", roles=frozenset({Role.ADMIN}))
TOOLS = [f"tool_{i}" for i in range(300)]
STORES: tuple[StoreKind, ...] = ("memory", "sqlite", "postgres")


def realistic(n: int = 1_000, *, outcomes: tuple[str, ...] = ("allow", "deny", "ask")) -> Policy:
    """Rules over 300 tools: nine in ten by exact name, the rest by glob, each with a
    condition on the arguments, outcomes drawn from ``outcomes``."""
    rng = random.Random(3)
    rules: list[dict[str, Any]] = []
    for i in range(n - 1):
        tool = rng.choice(TOOLS)
        tools = [tool] if rng.random() < 0.9 else [tool[:-1] + "*"]
        when = rng.choice(
            [
                f"args.amount > {rng.randint(10, 10_000)}",
                f'args.to ends_with "@ex{i}.com"',
                f'exists(args.path) and args.path starts_with "/p{i}"',
                f"args.amount >= {rng.randint(1, 50)} and args.amount < {rng.randint(50, 500)}",
            ]
        )
        outcome = rng.choice(outcomes)
        rules.append({"id": f"r{i}", "tools": tools, "when": when, "outcome": outcome})
    rules.append({"id": "rest", "tools": ["*"], "outcome": "ask"})
    return Policy.model_validate({"rules": rules})


def worst_case(n: int = 1_000) -> Policy:
    rules = [
        {"id": f"r{i}", "tools": ["*"], "when": f"args.amount > {1_000_000 + i}", "outcome": "deny"}
        for i in range(n)
    ]
    return Policy.model_validate({"rules": rules})


def reviews(n: int, seed: int = 5) -> list[Subject]:
    rng = random.Random(seed)
    return [
        Subject(
            tool=rng.choice(TOOLS),
            args={
                "amount": rng.randint(1, 20_000),
                "to": f"x@ex{rng.randint(0, 999)}.com",
                "path": f"/p{rng.randint(0, 999)}/x",
            },
            task_type="t",
        )
        for _ in range(n)
    ]


def per_evaluation(policy: CompiledPolicy, subjects: list[Subject], rounds: int = 5) -> float:
    """Median over rounds of microseconds per evaluation (tool candidates cached, as in a
    running server)."""
    for s in subjects[:200]:
        policy.evaluate(s)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for s in subjects:
            policy.evaluate(s)
        samples.append((time.perf_counter() - started) / len(subjects) * 1e6)
    return statistics.median(samples)


def compile_ms(policy: Policy) -> float:
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        CompiledPolicy(policy)
        samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def _spec(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    return {
        "kind": "review",
        "action": {
            "name": rng.choice(TOOLS),
            "args": {"amount": rng.randint(1, 20_000), "to": "x@y.z", "path": "/q"},
        },
    }


async def _creates(engine: Engine, count: int, offset: int) -> float:
    """Microseconds per review create."""
    started = time.perf_counter()
    for i in range(count):
        await engine.create(AGENT, _spec(offset + i))
    return (time.perf_counter() - started) / count * 1e6


async def create_cost(
    kinds: tuple[StoreKind, ...], count: int
) -> dict[StoreKind, tuple[float, float]]:
    """Per store: (µs per create without a policy, with the 1,000-rule policy), interleaved
    rounds on two fresh stores of the kind, medians."""
    out: dict[StoreKind, tuple[float, float]] = {}
    big = realistic(outcomes=("ask",))  # every review still posted: the same work but judging
    async with AsyncExitStack() as stack:
        for kind in kinds:
            plain = Engine(await stack.enter_async_context(open_store(kind)))
            governed = Engine(await stack.enter_async_context(open_store(kind)))
            await governed.put_policy(ADMIN, big)
            for engine in (plain, governed):
                await _creates(engine, 20, 0)  # warm up (and compile the policy)
            without: list[float] = []
            with_policy: list[float] = []
            for r in range(7):  # alternating which goes first, so drift touches both alike
                pair = [(plain, without), (governed, with_policy)]
                for engine, samples in pair if r % 2 == 0 else pair[::-1]:
                    samples.append(await _creates(engine, count, r * count))
            out[kind] = (statistics.median(without), statistics.median(with_policy))
    return out


async def verify_rate(reviews_made: int) -> tuple[float, int]:
    """(entries verified per second, entries) on a SQLite file."""
    reviewer = Principal(org_id=ORG, id="reviewer", roles=frozenset({Role.REVIEWER}))
    async with open_store("sqlite") as store:
        engine = Engine(store)
        for i in range(reviews_made):
            task = await engine.create(AGENT, _spec(i))
            await engine.decide(reviewer, task.id, {"type": "approve"})
        started = time.perf_counter()
        report = await engine.verify_chain(ORG)
        elapsed = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"the chain broke: {report}")
    return report.checked / elapsed, report.checked


async def run(quick: bool) -> list[Row]:
    n_reviews = 2_000 if quick else 20_000
    creates = 40 if quick else 200
    kinds = STORES if await postgres_available() else tuple(k for k in STORES if k != "postgres")
    costs = await create_cost(kinds, creates)
    memory_create = costs["memory"][0]
    subjects = reviews(n_reviews)
    indexed = per_evaluation(CompiledPolicy(realistic()), subjects)
    worst = per_evaluation(CompiledPolicy(worst_case()), subjects[: max(n_reviews // 10, 200)])
    empty = per_evaluation(CompiledPolicy(Policy()), subjects)
    anchor = "MemoryStore review create, no policy"
    rows = [
        row(BENCH, "evaluate a review, no rules", empty, "µs", anchor=anchor,
            ratio=ratio(empty, memory_create)),
        row(BENCH, "evaluate a review, 1,000 rules (indexed by tool)", indexed, "µs",
            anchor=anchor, ratio=ratio(indexed, memory_create)),
        row(BENCH, "evaluate a review, 1,000 rules, all evaluated (worst case)", worst, "µs",
            anchor=anchor, ratio=ratio(worst, memory_create)),
        row(BENCH, "compile a 1,000-rule policy (once per version)", compile_ms(realistic()),
            "ms"),
    ]  # fmt: skip
    rate, entries = await verify_rate(100 if quick else 1_000)
    rows.append(
        row(BENCH, "audit verify (SQLite file)", rate, "entries/s", note=f"{entries} entries")
    )
    for kind in STORES:
        figure = f"{STORE_LABELS[kind]}: review create judged by 1,000 rules"
        if kind not in costs:
            rows.append(row(BENCH, figure, None, "µs", note=NO_POSTGRES))
            continue
        plain, governed = costs[kind]
        rows.append(row(BENCH, f"{STORE_LABELS[kind]}: review create, no policy", plain, "µs"))
        rows.append(
            row(BENCH, figure, governed, "µs", anchor="same store, no policy",
                ratio=ratio(governed, plain))
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    print(table(asyncio.run(run(quick="--quick" in sys.argv))))
