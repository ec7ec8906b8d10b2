"""Policies and authority: versioned policies, reviewer groups, standing approvals, decision
tokens spent once, and the queue filtered by groups."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ..clock import ManualClock
from ..errors import ConcurrencyConflict
from ..ids import new_id
from ..lifecycle import Status
from ..models import ReviewPolicy, RuleOutcome, Task
from ..policy import Policy, PolicyRule, ReviewerGroup, StandingApproval
from ..store import Store
from ._conformance_support import StoreFactory, make_task


class GovernanceContract:
    """Part of :class:`~handrail.testing.StoreConformance`; needs its ``store``, ``store_factory``,
    ``clock`` and ``engine`` fixtures."""

    # ---------------------------------------------------------------- policies, authority

    async def test_policy_versions_are_kept_and_raced(
        self, store: Store, store_factory: StoreFactory, clock: ManualClock
    ) -> None:
        rule = PolicyRule(
            id="small", tools=("refund",), when="args.amount < 10", outcome=RuleOutcome.ALLOW
        )
        first = Policy(rules=(rule,), version=1, updated_at=clock.now(), updated_by="root")
        async with store.transaction() as tx:
            assert await tx.get_policy("org-a") is None
            await tx.put_policy("org-a", first)
        with pytest.raises(ConcurrencyConflict):  # version 1 is taken; 3 skips one
            async with store.transaction() as tx:
                await tx.put_policy("org-a", first)
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.put_policy("org-a", first.model_copy(update={"version": 3}))
        second = Policy(version=2, updated_at=clock.now(), updated_by="root")
        others = [await store_factory() for _ in range(3)]

        async def save(handle: Store) -> None:
            async with handle.transaction() as tx:
                await tx.put_policy("org-a", second)

        results = await asyncio.gather(*(save(h) for h in others), return_exceptions=True)
        assert sum(r is None for r in results) == 1, results
        assert all(isinstance(r, ConcurrencyConflict) for r in results if r is not None)
        async with store.transaction(readonly=True) as tx:
            assert await tx.get_policy("org-a") == second
            assert await tx.get_policy("org-b") is None
            context = await tx.policy_context("org-a", "refund", clock.now())
            known = await tx.policy_context("org-a", "refund", clock.now(), known_version=2)
            nothing = await tx.policy_context("org-b", "refund", clock.now())
        assert (context.version, context.policy) == (2, second)
        assert context.groups == [] and context.standing == []
        assert (known.version, known.policy) == (2, None)  # the caller has it already
        assert (nothing.version, nothing.policy) == (0, None)

    async def test_groups_are_versioned_and_deleted(self, store: Store) -> None:
        ops = ReviewerGroup(org_id="org-a", name="ops", members=("carol", "alice", "alice"))
        assert ops.members == ("alice", "carol")
        async with store.transaction() as tx:
            await tx.put_group(ops, expected_version=None)
            await tx.put_group(
                ReviewerGroup(org_id="org-a", name="finance", members=("bob",)),
                expected_version=None,
            )
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.put_group(ops, expected_version=None)
        grown = ops.model_copy(update={"members": ("alice", "bob", "carol"), "version": 2})
        async with store.transaction() as tx:
            await tx.put_group(grown, expected_version=1)
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.delete_group("org-a", "ops", expected_version=1)
        async with store.transaction() as tx:
            assert [g.name for g in await tx.list_groups("org-a")] == ["finance", "ops"]
            assert (await tx.list_groups("org-a"))[1] == grown
            await tx.delete_group("org-a", "ops", expected_version=2)
        async with store.transaction(readonly=True) as tx:
            assert [g.name for g in await tx.list_groups("org-a")] == ["finance"]
            assert await tx.list_groups("org-b") == []

    async def test_standing_approvals_by_tool_and_lifetime(
        self, store: Store, clock: ManualClock
    ) -> None:
        now = clock.now()

        def approval(tool: str, hours: float, **kw: Any) -> StandingApproval:
            base: dict[str, Any] = {
                "id": new_id(),
                "org_id": "org-a",
                "tool": tool,
                "when": "args.amount < 50",
                "granted_by": "alice",
                "task_id": new_id(),
                "created_at": now,
                "expires_at": now + timedelta(hours=hours),
            }
            return StandingApproval.model_validate(base | kw)

        live = approval("refund", 2)
        exact = approval("refund", 2, when=None, args={"order": 7, "items": [1, 2.5]})
        short = approval("refund", 0.5)
        other = approval("email", 2)
        elsewhere = approval("refund", 2, org_id="org-b")
        async with store.transaction() as tx:
            for a in (live, exact, short, other, elsewhere):
                await tx.put_standing(a, expected_version=None)
        revoked = live.model_copy(update={"revoked_at": now, "revoked_by": "root", "version": 2})
        async with store.transaction() as tx:
            await tx.put_standing(revoked, expected_version=1)
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.put_standing(revoked, expected_version=1)
        hour = now + timedelta(hours=1)
        async with store.transaction(readonly=True) as tx:
            assert await tx.get_standing("org-a", exact.id) == exact
            assert await tx.get_standing("org-b", exact.id) is None
            assert {a.id for a in await tx.list_standing("org-a")} == {
                live.id,
                exact.id,
                short.id,
                other.id,
            }
            assert await tx.list_standing("org-a", tool="refund", active_at=hour) == [exact]
            context = await tx.policy_context("org-a", "refund", now)
        assert {a.id for a in context.standing} == {exact.id, short.id}

    async def test_a_token_is_spent_once(
        self, store: Store, store_factory: StoreFactory, clock: ManualClock
    ) -> None:
        async with store.transaction() as tx:
            assert not await tx.token_spent("t-1")
            await tx.spend_token("org-a", "t-1", "task-1", clock.now())
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.spend_token("org-a", "t-1", "task-1", clock.now())
        others = [await store_factory() for _ in range(4)]

        async def spend(handle: Store) -> None:
            async with handle.transaction() as tx:
                await tx.spend_token("org-a", "t-2", "task-1", clock.now())

        results = await asyncio.gather(*(spend(h) for h in others), return_exceptions=True)
        assert sum(r is None for r in results) == 1, results
        async with store.transaction(readonly=True) as tx:
            assert await tx.token_spent("t-1") and await tx.token_spent("t-2")

    async def test_open_tasks_respect_groups_and_own_reviews(
        self, store: Store, clock: ManualClock
    ) -> None:
        now = clock.now()

        def open_task(**kw: Any) -> Task:
            base: dict[str, Any] = {"status": Status.POSTED, "assignments": (), "redundancy": 1}
            return make_task(clock, **(base | kw))

        anyone = open_task(policy=None)
        finance = open_task(policy=ReviewPolicy(groups=("finance",)))
        either = open_task(policy=ReviewPolicy(groups=("finance", "ops")))
        mine = open_task(created_by="alice", policy=None)
        async with store.transaction() as tx:
            for task in (anyone, finance, either, mine):
                await tx.insert_task(task)
        async with store.transaction(readonly=True) as tx:

            async def seen(**kw: Any) -> set[str]:
                return {t.id for t in await tx.open_tasks("org-a", now=now, **kw)}

            assert await seen() == {anyone.id, finance.id, either.id, mine.id}
            assert await seen(exclude_worker="alice") == {anyone.id, finance.id, either.id}
            assert await seen(groups=[]) == {anyone.id, mine.id}
            assert await seen(groups=["ops"]) == {anyone.id, either.id, mine.id}
            assert await seen(groups=["finance", "x"]) == {
                anyone.id,
                finance.id,
                either.id,
                mine.id,
            }
