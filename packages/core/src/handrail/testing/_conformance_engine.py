"""The engine on a store: idempotent and racing creates, racing claims, decisions, bad input,
the SLA sweep and several workers on one task."""

from __future__ import annotations

import asyncio

import pytest

from ..clock import ManualClock
from ..engine import Engine
from ..errors import IdempotencyConflict, InvalidTransition, NotAssigned, ValidationError
from ..lifecycle import Event, Status
from ..models import AssignmentStatus, Decision, Principal, Role, Task
from ._conformance_support import ADMIN, AGENT, ALICE, BOB, OUTSIDER, SCHEMA, StoreFactory


class EngineContract:
    """Part of :class:`~handrail.testing.StoreConformance`; needs its ``store``, ``store_factory``,
    ``clock`` and ``engine`` fixtures."""

    # ---------------------------------------------------------------- the engine on it

    async def test_create_is_idempotent(self, engine: Engine) -> None:
        spec = {
            "kind": "review",
            "action": {"name": "pay", "args": {"n": 1}},
            "idempotency_key": "k",
        }
        first = await engine.create(AGENT, spec)
        again = await engine.create(AGENT, spec)
        assert again.id == first.id
        with pytest.raises(IdempotencyConflict) as caught:
            await engine.create(AGENT, {**spec, "action": {"name": "pay", "args": {"n": 2}}})
        assert caught.value.task_id == first.id
        other_org = await engine.create(OUTSIDER, spec)
        assert other_org.id != first.id
        assert len((await engine.list(AGENT)).items) == 1
        assert [e.event for e in await engine.history(AGENT, first.id)] == [Event.CREATE]

    async def test_concurrent_creates_with_one_key_make_one_task(
        self, store_factory: StoreFactory, clock: ManualClock
    ) -> None:
        engines = [Engine(await store_factory(), clock=clock) for _ in range(4)]
        spec = {"kind": "review", "action": {"name": "pay"}, "idempotency_key": "race"}
        made = await asyncio.gather(*(e.create(AGENT, spec) for e in engines for _ in range(3)))
        assert len({t.id for t in made}) == 1
        assert len((await engines[0].list(AGENT)).items) == 1

    async def test_two_workers_claiming_at_once_one_wins(
        self, store_factory: StoreFactory, clock: ManualClock
    ) -> None:
        first, second = await store_factory(), await store_factory()
        for_alice, for_bob = Engine(first, clock=clock), Engine(second, clock=clock)
        for _ in range(5):
            task = await for_alice.create(AGENT, {"kind": "review", "action": {"name": "pay"}})
            results = await asyncio.gather(
                for_alice.claim(ALICE, task.id), for_bob.claim(BOB, task.id), return_exceptions=True
            )
            winners = [r for r in results if isinstance(r, Task)]
            losers = [r for r in results if isinstance(r, BaseException)]
            assert len(winners) == 1, results
            assert len(losers) == 1 and isinstance(losers[0], InvalidTransition), results
            stored = await for_alice.get(AGENT, task.id)
            assert [a.worker_id for a in stored.assignments] == [
                winners[0].assignments[0].worker_id
            ]
            claims = [e for e in await for_alice.history(AGENT, task.id) if e.event is Event.CLAIM]
            assert len(claims) == 1

    async def test_review_decided_on_a_posted_task(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {"kind": "review", "action": {"name": "pay"}})
        done = await engine.decide(ALICE, task.id, Decision.modify({"n": 2}, "smaller"))
        assert done.status is Status.VERIFIED
        assert done.decision is not None and done.decision.args == {"n": 2}
        assert done.decision.reviewer_id == "alice"
        steps = [(e.from_status, e.to_status) for e in await engine.history(AGENT, task.id)]
        assert steps == [
            (None, Status.POSTED),
            (Status.POSTED, Status.ASSIGNED),
            (Status.ASSIGNED, Status.SUBMITTED),
            (Status.SUBMITTED, Status.VERIFIED),
        ]
        assert await engine.get(ALICE, task.id) == done  # the reviewer's view, reloaded
        assert (await engine.get(AGENT, task.id)).created_by == "agent"

    async def test_bad_input_changes_nothing(self, engine: Engine) -> None:
        schema = {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}}
        review = await engine.create(
            AGENT,
            {
                "kind": "review",
                "action": {"name": "mail", "args": {"to": "a"}, "args_schema": schema},
                "allowed_decisions": ["approve", "modify"],
            },
        )
        judgment = await engine.create(AGENT, {"kind": "judgment", "output_schema": SCHEMA})
        await engine.claim(ALICE, judgment.id)
        before = [await engine.get(AGENT, t.id) for t in (review, judgment)]
        history = [await engine.history(AGENT, t.id) for t in (review, judgment)]
        with pytest.raises(ValidationError):
            await engine.decide(ALICE, review.id, Decision.reject("no"))  # not allowed
        with pytest.raises(ValidationError):
            await engine.decide(ALICE, review.id, Decision.modify({"to": 5}))
        with pytest.raises(ValidationError):
            await engine.submit(ALICE, judgment.id, {"eligible": "yes"})
        with pytest.raises(NotAssigned):
            await engine.submit(BOB, judgment.id, {"eligible": True})  # bob holds no slot
        with pytest.raises(InvalidTransition):
            await engine.verify(ADMIN, review.id)  # not in manual review
        after = [await engine.get(AGENT, t.id) for t in (review, judgment)]
        assert after == before
        assert [await engine.history(AGENT, t.id) for t in (review, judgment)] == history

    async def test_sla_sweep_expires_due_tasks(self, engine: Engine, clock: ManualClock) -> None:
        task = await engine.create(
            AGENT, {"kind": "review", "action": {"name": "pay"}, "sla_seconds": 60}
        )
        assert await engine.expire_due() == []
        clock.advance(61)
        expired = await engine.expire_due()
        assert [t.id for t in expired] == [task.id]
        assert expired[0].status is Status.EXPIRED
        assert await engine.expire_due() == []
        with pytest.raises(InvalidTransition):
            await engine.decide(ALICE, task.id, Decision.approve())

    async def test_several_workers_on_one_task(self, engine: Engine) -> None:
        carol = Principal(org_id="org-a", id="carol", roles=frozenset({Role.REVIEWER}))
        task = await engine.create(
            AGENT, {"kind": "judgment", "output_schema": SCHEMA, "redundancy": 2}
        )
        for worker in (ALICE, BOB):
            await engine.claim(worker, task.id)
        answer = {"eligible": True}
        await engine.submit(ALICE, task.id, answer)
        await engine.release(BOB, task.id, "out of time")
        assert [t.id for t in await engine.queue(carol)] == [task.id]
        await engine.claim(carol, task.id)
        done = await engine.submit(carol, task.id, answer)
        assert await engine.get(carol, task.id) == done  # the worker's view, reloaded
        stored = await engine.get(AGENT, task.id)
        assert (stored.status, stored.output) == (Status.VERIFIED, answer)
        assert [(a.worker_id, a.status) for a in stored.assignments] == [
            ("alice", AssignmentStatus.SUBMITTED),
            ("bob", AssignmentStatus.RELEASED),
            ("carol", AssignmentStatus.SUBMITTED),
        ]
        assert stored.assignments[1].released_at is not None
