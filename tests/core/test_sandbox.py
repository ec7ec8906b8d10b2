"""Simulated reviewers: scripts, rules, functions and defaults."""

from __future__ import annotations

import asyncio

import pytest

from handrail import (
    Decision,
    DecisionType,
    Engine,
    MemoryStore,
    Principal,
    Role,
    SandboxReviewer,
    SandboxRule,
    Status,
    Task,
)

SANDBOX_AGENT = Principal(org_id="o", id="agent", roles=frozenset({Role.REQUESTER}), sandbox=True)
LIVE_AGENT = Principal(org_id="o", id="agent", roles=frozenset({Role.REQUESTER}))
SCHEMA = {
    "type": "object",
    "required": ["label", "score", "tags", "ok", "nested"],
    "properties": {
        "label": {"enum": ["cat", "dog"]},
        "score": {"type": "integer", "minimum": 3},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 2},
        "ok": {"type": "boolean"},
        "nested": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}},
        "skipped": {"type": "string"},
    },
}


async def run_with(reviewer: SandboxReviewer, *specs: dict[str, object]) -> list[Task]:
    engine = Engine(MemoryStore(), wait_backstop=3600)
    runner = asyncio.create_task(reviewer.run(engine, "o"))
    try:
        made = [await engine.create(SANDBOX_AGENT, s) for s in specs]
        done = []
        for task in made:
            try:
                done.append(await engine.wait(SANDBOX_AGENT, task.id, timeout=0.5))
            except TimeoutError:
                done.append(await engine.get(SANDBOX_AGENT, task.id))
        return done
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def review(name: str, **kw: object) -> dict[str, object]:
    return {"kind": "review", "action": {"name": name}, **kw}


async def test_defaults_approve_and_answer_with_a_valid_example() -> None:
    approved, answered = await run_with(
        SandboxReviewer(), review("send"), {"kind": "judgment", "output_schema": SCHEMA}
    )
    assert approved.decision is not None and approved.decision.type is DecisionType.APPROVE
    assert approved.decision.reviewer_id == "sandbox"
    assert answered.status is Status.VERIFIED
    assert answered.output == {
        "label": "cat",
        "score": 3,
        "tags": ["xx", "xx"],
        "ok": True,
        "nested": {"x": 0},
    }


async def test_rules_match_paths_globs_and_predicates() -> None:
    reviewer = SandboxReviewer(
        SandboxRule(
            when={"action.name": "delete_*", "risk_tier": "high"}, then=Decision.reject("no")
        ),
        SandboxRule(
            when=lambda t: t.payload.get("amount") == 5, then=Decision.modify({"amount": 4})
        ),
        default=Decision.reject("ask later"),
    )
    risky, tame, five, other = await run_with(
        reviewer,
        review("delete_all", risk_tier="high"),
        review("delete_all", risk_tier="low"),
        review("pay", payload={"amount": 5}),
        review("pay"),
    )
    assert risky.decision is not None and risky.decision.message == "no"
    assert tame.decision is not None and tame.decision.message == "ask later"
    assert five.decision is not None and five.decision.args == {"amount": 4}
    assert other.decision is not None and other.decision.type is DecisionType.REJECT


async def test_a_script_is_used_in_order_then_the_function() -> None:
    reviewer = SandboxReviewer(
        script=[Decision.reject("first"), Decision.approve()],
        decide=lambda task: Decision.reject(f"fn:{task.action.name if task.action else ''}"),
    )
    one, two, three = await run_with(reviewer, review("a"), review("b"), review("c"))
    messages = [t.decision.message if t.decision else None for t in (one, two, three)]
    assert messages == ["first", None, "fn:c"]


async def test_live_tasks_and_declined_tasks_are_left_to_humans() -> None:
    engine = Engine(MemoryStore())
    runner = asyncio.create_task(SandboxReviewer(default=None).run(engine, "o"))
    live = await engine.create(LIVE_AGENT, review("pay"))
    test = await engine.create(SANDBOX_AGENT, review("pay"))
    await asyncio.sleep(0.1)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert (await engine.get(LIVE_AGENT, live.id)).status is Status.POSTED
    assert (await engine.get(LIVE_AGENT, test.id)).status is Status.POSTED


@pytest.mark.parametrize("delay", [0.05])
async def test_a_delay_holds_the_answer_back(delay: float) -> None:
    engine = Engine(MemoryStore())
    runner = asyncio.create_task(SandboxReviewer(delay=delay).run(engine, "o"))
    task = await engine.create(SANDBOX_AGENT, review("pay"))
    await asyncio.sleep(delay / 5)
    assert (await engine.get(SANDBOX_AGENT, task.id)).status is Status.POSTED
    done = await engine.wait(SANDBOX_AGENT, task.id, timeout=5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert done.status is Status.VERIFIED


async def test_a_refused_scripted_answer_gives_the_task_back() -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    (task,) = await run_with(
        SandboxReviewer(script=[{"n": "not a number"}]),
        {"kind": "judgment", "output_schema": schema},
    )
    assert task.status is Status.POSTED
    assert [a.status.value for a in task.assignments] == ["released"]
