"""Escalation: a review nobody takes within its rule's ``escalate_after_seconds`` is opened
to the rule's next reviewer group by the SLA sweep, one group per period, as a recorded
``widen`` event; the engine's usual checks then let that group decide it (and nobody
else). Run on the memory store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticError

from handrail import (
    Decision,
    Engine,
    Event,
    ManualClock,
    MemoryStore,
    NotEligible,
    Principal,
    Role,
    Status,
)
from handrail.policy import PolicyRule
from handrail.sla import SlaScheduler
from handrail.store import Store
from handrail.store.sql import SqlStore
from tests.core.test_store_conformance import postgres_store
from tests.postgres import fresh_schema

AGENT = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}))
ADMIN = Principal(org_id="acme", id="root", roles=frozenset({Role.ADMIN}))


def reviewer(name: str) -> Principal:
    return Principal(org_id="acme", id=name, roles=frozenset({Role.REVIEWER}))


ALICE, BOB, CAROL, EVE = (reviewer(n) for n in ("alice", "bob", "carol", "eve"))
RULES: list[dict[str, Any]] = [
    {"id": "pay", "tools": ["pay"], "outcome": "ask", "reviewers": ["support"],
     "escalate_to": ["leads", "managers"], "escalate_after_seconds": 60},
]  # fmt: skip


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        sql = await SqlStore.open(f"sqlite:///{tmp_path / 'esc.db'}")
        yield sql
        await sql.close()
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_schema(url) as schema:
        sql = await postgres_store(url, schema)
        yield sql
        await sql.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def engine(store: Store, clock: ManualClock) -> Engine:
    engine = Engine(store, clock=clock)
    await engine.put_policy(ADMIN, {"rules": RULES})
    await engine.put_group(ADMIN, "support", ["alice"])
    await engine.put_group(ADMIN, "leads", ["bob"])
    await engine.put_group(ADMIN, "managers", ["carol"])
    return engine


def pay() -> dict[str, Any]:
    return {"kind": "review", "action": {"name": "pay", "args": {"amount": 5}}, "sla_seconds": 600}


async def test_nobody_takes_it_so_the_next_groups_are_let_in_one_per_period(
    engine: Engine, clock: ManualClock
) -> None:
    sla = SlaScheduler(engine)
    task = await engine.create(AGENT, pay())
    assert task.escalate_at == task.created_at + timedelta(seconds=60)
    assert [t.id for t in await engine.queue(BOB)] == []
    with pytest.raises(NotEligible):
        await engine.claim(BOB, task.id)

    clock.advance(59)
    assert (await sla.tick()).escalated == []
    clock.advance(1)
    report = await sla.tick()
    assert [t.id for t in report.escalated] == [task.id]
    widened = await engine.get(ADMIN, task.id)
    assert widened.policy is not None and widened.policy.groups == ("support", "leads")
    assert widened.policy.escalate_to == ("managers",)
    assert widened.escalate_at == clock.now() + timedelta(seconds=60)
    assert [t.id for t in await engine.queue(BOB)] == [task.id]
    assert [t.id for t in await engine.queue(CAROL)] == []
    assert (await sla.tick()).escalated == []  # once per period

    clock.advance(60)
    assert [t.id for t in (await sla.tick()).escalated] == [task.id]
    last = await engine.get(ADMIN, task.id)
    assert last.policy is not None and last.policy.groups == ("support", "leads", "managers")
    assert last.escalate_at is None
    clock.advance(600)
    assert (await sla.tick()).escalated == []

    history = await engine.history(ADMIN, task.id)
    widens = [e for e in history if e.event is Event.WIDEN]
    assert [(e.actor, e.data["group"]) for e in widens] == [("sla", "leads"), ("sla", "managers")]
    assert all(e.from_status is e.to_status is Status.POSTED for e in widens)
    audit = [e.kind for e in await engine.audit_entries(ADMIN, limit=1000) if e.task_id == task.id]
    assert audit.count("task.widen") == 2


async def test_the_let_in_group_decides_and_outsiders_still_cannot(
    engine: Engine, clock: ManualClock
) -> None:
    task = await engine.create(AGENT, pay())
    clock.advance(60)
    await engine.escalate_due()
    with pytest.raises(NotEligible):
        await engine.decide(EVE, task.id, Decision(type="approve"))
    with pytest.raises(NotEligible):  # managers come only after another period
        await engine.decide(CAROL, task.id, Decision(type="approve"))
    done = await engine.decide(BOB, task.id, Decision(type="approve"))
    assert done.status is Status.VERIFIED and done.decision is not None
    assert done.decision.reviewer_id == "bob"


async def test_a_review_someone_took_is_not_escalated(engine: Engine, clock: ManualClock) -> None:
    task = await engine.create(AGENT, pay())
    await engine.claim(ALICE, task.id)
    clock.advance(120)
    assert await engine.escalate_due() == []
    held = await engine.get(ADMIN, task.id)
    assert held.policy is not None and held.policy.groups == ("support",)
    # given back after its time: then it escalates
    await engine.release(ALICE, task.id)
    assert [t.id for t in await engine.escalate_due()] == [task.id]


async def test_a_decided_review_is_not_escalated(engine: Engine, clock: ManualClock) -> None:
    task = await engine.create(AGENT, pay())
    await engine.decide(ALICE, task.id, Decision(type="reject", message="no"))
    clock.advance(120)
    assert await engine.escalate_due() == []


def test_escalation_needs_groups_and_a_period() -> None:
    with pytest.raises(PydanticError, match="go together"):
        PolicyRule(id="r", outcome="ask", reviewers=("a",), escalate_to=("b",))
    with pytest.raises(PydanticError, match="name the reviewer groups"):
        PolicyRule(id="r", outcome="ask", escalate_to=("b",), escalate_after_seconds=5)
    with pytest.raises(PydanticError, match="only apply to 'ask'"):
        PolicyRule(id="r", outcome="allow", escalate_to=("b",), escalate_after_seconds=5)


async def test_two_sweeps_at_once_widen_a_review_once(engine: Engine, clock: ManualClock) -> None:
    """Both read the review as due; the second finds it widened already and reports
    nothing, so the sweep's report counts only what it did."""
    task = await engine.create(AGENT, pay())
    clock.advance(120)
    first, second = await asyncio.gather(engine.escalate_due(), engine.escalate_due())
    assert sorted(len(r) for r in (first, second)) == [0, 1]
    widen = [e for e in await engine.history(ADMIN, task.id) if e.event.value == "widen"]
    assert len(widen) == 1
