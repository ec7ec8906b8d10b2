"""The raw task contract: round trips, organisation isolation, idempotency keys, optimistic
versions, rollback, history and the change feed, listing, the queue and due tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ..clock import ManualClock
from ..errors import ConcurrencyConflict
from ..lifecycle import Event, Status
from ..models import Assignment, AssignmentStatus, Kind, RiskTier, Task
from ..store import Store, TaskQuery
from ._conformance_support import SCHEMA, _event, make_task


class TaskContract:
    """Part of :class:`~handrail.testing.StoreConformance`; needs its ``store``, ``store_factory``,
    ``clock`` and ``engine`` fixtures."""

    # ---------------------------------------------------------------- the raw contract

    async def test_round_trip_keeps_every_field(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
        async with store.transaction(readonly=True) as tx:
            loaded = await tx.get_task("org-a", task.id)
        assert loaded == task

    async def test_other_organisations_see_nothing(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
            await tx.append_events([_event(task, clock)])
        async with store.transaction(readonly=True) as tx:
            assert await tx.get_task("org-b", task.id) is None
            assert task.idempotency_key is not None
            assert await tx.find_by_key("org-b", task.idempotency_key) is None
            assert await tx.list_tasks("org-b", TaskQuery()) == []
            assert await tx.list_events("org-b", task.id) == []
            assert await tx.open_tasks("org-b", now=clock.now()) == []

    async def test_idempotency_key_is_unique_per_organisation(
        self, store: Store, clock: ManualClock
    ) -> None:
        first = make_task(clock, idempotency_key="same")
        async with store.transaction() as tx:
            await tx.insert_task(first)
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.insert_task(make_task(clock, idempotency_key="same"))
        elsewhere = make_task(clock, idempotency_key="same", org_id="org-b")
        async with store.transaction() as tx:
            await tx.insert_task(elsewhere)
        async with store.transaction(readonly=True) as tx:
            found = await tx.find_by_key("org-a", "same")
            assert found is not None and found.id == first.id
            assert len(await tx.list_tasks("org-a", TaskQuery())) == 1

    async def test_stale_update_is_refused(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
        newer = task.model_copy(update={"status": Status.SUBMITTED, "version": 2})
        async with store.transaction() as tx:
            await tx.update_task(newer, expected_version=1)
        stale = task.model_copy(update={"status": Status.CANCELLED, "version": 2})
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.update_task(stale, expected_version=1)
        async with store.transaction(readonly=True) as tx:
            loaded = await tx.get_task("org-a", task.id)
        assert loaded is not None
        assert (loaded.status, loaded.version) == (Status.SUBMITTED, 2)

    async def test_update_rewrites_assignments(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
        fewer = task.model_copy(update={"assignments": task.assignments[:1], "version": 2})
        async with store.transaction() as tx:
            await tx.update_task(fewer, expected_version=1)
        async with store.transaction(readonly=True) as tx:
            loaded = await tx.get_task("org-a", task.id)
        assert loaded is not None and loaded.assignments == task.assignments[:1]

    async def test_an_exception_rolls_everything_back(
        self, store: Store, clock: ManualClock
    ) -> None:
        task = make_task(clock)

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            async with store.transaction() as tx:
                await tx.insert_task(task)
                await tx.append_events([_event(task, clock)])
                raise Boom
        async with store.transaction(readonly=True) as tx:
            assert await tx.get_task("org-a", task.id) is None
            assert await tx.list_events("org-a", task.id) == []
        assert await store.last_seq() == 0

    async def test_history_is_ordered_and_fed(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        first, second = _event(task, clock), _event(task, clock, Event.CLAIM)
        async with store.transaction() as tx:
            await tx.insert_task(task)
            await tx.append_events([first])
        start = await store.last_seq()
        async with store.transaction() as tx:
            await tx.append_events([second])
        async with store.transaction(readonly=True) as tx:
            history = await tx.list_events("org-a", task.id)
        assert [e.id for e in history] == [first.id, second.id]
        assert history[0].seq is not None and history[1].seq is not None
        assert history[0].seq < history[1].seq
        assert history[1].model_copy(update={"seq": None}) == second
        changes = await store.changes_since(start)
        assert [(c.seq, c.task_id, c.org_id) for c in changes] == [
            (history[1].seq, task.id, "org-a")
        ]
        assert await store.last_seq() == history[1].seq
        assert await store.changes_since(history[1].seq) == []
        async with store.transaction() as tx:
            await tx.insert_task(elsewhere := make_task(clock, org_id="org-b"))
            await tx.append_events([_event(elsewhere, clock)])
        async with store.transaction(readonly=True) as tx:
            mine = await tx.org_events("org-a", 0, 10)
            assert [e.id for e in mine] == [first.id, second.id]
            assert [e.id for e in await tx.org_events("org-a", mine[0].seq or 0, 10)] == [second.id]
            assert [e.id for e in await tx.org_events("org-a", 0, 1)] == [first.id]
            assert [e.org_id for e in await tx.org_events("org-b", 0, 10)] == ["org-b"]

    async def test_list_filters_and_pages(self, store: Store, clock: ManualClock) -> None:
        made = []
        async with store.transaction() as tx:
            for i in range(7):
                status = Status.POSTED if i % 2 else Status.VERIFIED
                kind_fields: dict[str, Any] = (
                    {"kind": Kind.JUDGMENT, "action": None, "output_schema": SCHEMA}
                    if i == 3
                    else {}
                )
                task = make_task(
                    clock,
                    status=status,
                    task_type=f"type-{i % 3}",
                    assignments=(),
                    batch_id="turn-1" if i in (2, 5) else None,
                    **kind_fields,
                )
                await tx.insert_task(task)
                made.append(task)
        ids = [t.id for t in made]
        async with store.transaction(readonly=True) as tx:
            page1 = await tx.list_tasks("org-a", TaskQuery(limit=3))
            page2 = await tx.list_tasks("org-a", TaskQuery(limit=3, after=page1[-1].id))
            assert [t.id for t in page1 + page2] == ids[:6]
            newest = await tx.list_tasks("org-a", TaskQuery(limit=2, newest_first=True))
            assert [t.id for t in newest] == ids[::-1][:2]
            older = await tx.list_tasks(
                "org-a", TaskQuery(limit=10, newest_first=True, after=newest[-1].id)
            )
            assert [t.id for t in older] == ids[::-1][2:]
            posted = await tx.list_tasks("org-a", TaskQuery(statuses=frozenset({Status.POSTED})))
            assert [t.id for t in posted] == ids[1::2]
            typed = await tx.list_tasks("org-a", TaskQuery(task_type="type-1"))
            assert [t.id for t in typed] == [ids[1], ids[4]]
            judged = await tx.list_tasks("org-a", TaskQuery(kind=Kind.JUDGMENT))
            assert [t.id for t in judged] == [ids[3]]
            batch = await tx.list_tasks("org-a", TaskQuery(batch_id="turn-1"))
            assert [(t.id, t.batch_id) for t in batch] == [(ids[2], "turn-1"), (ids[5], "turn-1")]

    async def test_open_tasks_are_the_queue(self, store: Store, clock: ManualClock) -> None:
        now = clock.now()
        later = now + timedelta(seconds=900)

        def open_task(**kw: Any) -> Task:
            base: dict[str, Any] = {"status": Status.POSTED, "assignments": (), "redundancy": 1}
            return make_task(clock, **(base | kw))

        held_by_alice = Assignment(worker_id="alice", claimed_at=now)
        released_by_alice = Assignment(
            worker_id="alice", status=AssignmentStatus.RELEASED, claimed_at=now, released_at=now
        )
        soon = open_task(expires_at=now + timedelta(seconds=60), risk_tier=RiskTier.LOW)
        soon_risky = open_task(expires_at=now + timedelta(seconds=60), risk_tier=RiskTier.CRITICAL)
        late = open_task(expires_at=later)
        free_slot = open_task(
            status=Status.ASSIGNED,
            redundancy=2,
            assignments=(Assignment(worker_id="bob", claimed_at=now),),
        )
        reopened = open_task(assignments=(released_by_alice,))
        hidden = [
            open_task(expires_at=now, created_at=now - timedelta(seconds=60)),  # due now
            open_task(status=Status.ASSIGNED, assignments=(held_by_alice,)),  # full
            open_task(status=Status.ASSIGNED, redundancy=2, assignments=(held_by_alice,)),
            open_task(status=Status.VERIFIED),
            open_task(status=Status.ESTIMATE_PENDING),
            open_task(org_id="org-b"),
        ]
        async with store.transaction() as tx:
            for task in [late, soon, soon_risky, free_slot, reopened, *hidden]:
                await tx.insert_task(task)
        async with store.transaction(readonly=True) as tx:
            queue = await tx.open_tasks("org-a", now=now, exclude_worker="alice")
            first_two = await tx.open_tasks("org-a", now=now, exclude_worker="alice", limit=2)
            risky = await tx.open_tasks("org-a", now=now, risk_tier=RiskTier.CRITICAL)
            for_bob = await tx.open_tasks("org-a", now=now, exclude_worker="bob")
        ordered = sorted([free_slot, reopened, late], key=lambda t: (t.expires_at, t.id))
        assert [t.id for t in queue] == [soon_risky.id, soon.id] + [t.id for t in ordered]
        assert [t.id for t in first_two] == [soon_risky.id, soon.id]
        assert [t.id for t in risky] == [soon_risky.id]
        assert free_slot.id not in {t.id for t in for_bob}
        assert hidden[2].id in {t.id for t in for_bob}

    async def test_due_tasks_span_organisations(self, store: Store, clock: ManualClock) -> None:
        now = clock.now()
        due_a = make_task(clock, status=Status.POSTED, expires_at=now + timedelta(seconds=1))
        due_b = make_task(
            clock,
            status=Status.ESTIMATE_PENDING,
            org_id="org-b",
            expires_at=now + timedelta(seconds=2),
        )
        done = make_task(clock, status=Status.VERIFIED, expires_at=now + timedelta(seconds=1))
        not_yet = make_task(clock, status=Status.POSTED, expires_at=now + timedelta(days=2))
        async with store.transaction() as tx:
            for task in (due_a, due_b, done, not_yet):
                await tx.insert_task(task)
        async with store.transaction(readonly=True) as tx:
            assert await tx.due_tasks(now, 10) == []
            due = await tx.due_tasks(now + timedelta(days=1), 10)
        assert [t.id for t in due] == [due_a.id, due_b.id]

    async def test_returned_tasks_are_copies(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
            task.payload["order"] = "changed after insert"
        async with store.transaction(readonly=True) as tx:
            loaded = await tx.get_task("org-a", task.id)
            assert loaded is not None
            loaded.payload["total"] = "changed after read"
            again = await tx.get_task("org-a", task.id)
        assert again is not None
        assert again.payload["order"] == {"id": 42, "items": ["a", "b"]}
        assert again.payload["total"] == "89.99"
