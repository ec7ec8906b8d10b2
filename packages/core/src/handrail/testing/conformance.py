"""The store contract, as tests every ``Store`` implementation must pass.

Subclass :class:`StoreConformance` in a test module and provide two async fixtures:
``store`` (a fresh, empty store) and ``store_factory`` (a callable opening another handle
on the *same* database, for races between connections; for an in-process store it may
return the same object)::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self): ...
        @pytest.fixture
        def store_factory(self, store): ...

The suite needs pytest and pytest-asyncio (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

try:
    import pytest
except ImportError as _missing:  # pragma: no cover
    raise ImportError("handrail.testing needs pytest") from _missing

from ..audit import AuditRecord, verify
from ..clock import ManualClock
from ..engine import Engine
from ..errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransition,
    NotAssigned,
    ValidationError,
)
from ..ids import new_id
from ..ledger import (
    Account,
    AccountKind,
    Entry,
    Hold,
    HoldStatus,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    Settlement,
)
from ..lifecycle import Event, Status
from ..models import (
    Assignment,
    AssignmentStatus,
    Decision,
    Estimate,
    Kind,
    Principal,
    ReviewPolicy,
    RiskTier,
    Role,
    RuleOutcome,
    StageResult,
    Task,
    TaskEvent,
    Verification,
)
from ..money import Currency, Money
from ..policy import Policy, PolicyRule, ReviewerGroup, StandingApproval
from ..store import Store, TaskQuery, Transaction
from ..workers import AnswerSample, WorkerProfile, WorkerStats

__all__ = ["StoreConformance", "make_task"]

StoreFactory = Callable[[], Awaitable[Store]]

AGENT = Principal(org_id="org-a", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="org-a", id="alice", roles=frozenset({Role.REVIEWER}))
BOB = Principal(org_id="org-a", id="bob", roles=frozenset({Role.REVIEWER}))
ADMIN = Principal(org_id="org-a", id="root", roles=frozenset({Role.ADMIN}))
OUTSIDER = Principal(org_id="org-b", id="agent", roles=frozenset({Role.REQUESTER}))
SCHEMA = {
    "type": "object",
    "required": ["eligible"],
    "properties": {"eligible": {"type": "boolean"}, "note": {"type": "string"}},
}


def make_task(clock: ManualClock, **overrides: Any) -> Task:
    """A fully populated review task, with every optional field set."""
    now = clock.now()
    fields: dict[str, Any] = {
        "id": new_id(),
        "org_id": "org-a",
        "kind": Kind.REVIEW,
        "task_type": "refund",
        "title": "Refund order 42?",
        "instructions": "Check the order history.",
        "payload": {"order": {"id": 42, "items": ["a", "b"]}, "total": "89.99", "vip": True},
        "risk_tier": RiskTier.HIGH,
        "sla_seconds": 600,
        "payout": Money.parse("0.50", "USD"),
        "redundancy": 2,
        "max_answers": 3,
        "max_attempts": 2,
        "attempt": 1,
        "backup_at": now + timedelta(seconds=480),
        "gold_answer": {"type": "approve"},
        "idempotency_key": f"key-{new_id()}",
        "callback_url": "https://example.com/hook",
        "metadata": {"trace": "t-1", "nested": {"x": [1, 2.5, None]}},
        "action": {
            "name": "refund",
            "args": {"order_id": 42, "amount": "89.99"},
            "args_schema": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
        },
        "agent_reasoning": "The item arrived broken.",
        "confidence": 0.42,
        "allowed_decisions": ("approve", "reject", "modify", "respond"),
        "status": Status.ASSIGNED,
        "sandbox": True,
        "created_by": "agent",
        "output": None,
        "verification": Verification(
            outcome="manual_review",
            score=61.5,
            stages=(StageResult(name="schema", verdict="pass", score=100, reasons=("ok",)),),
            reasons=("needs a look",),
        ),
        "failure_reason": None,
        "assignments": (
            Assignment(
                worker_id="alice",
                status=AssignmentStatus.SUBMITTED,
                claimed_at=now,
                submitted_at=now + timedelta(seconds=3),
                output={"type": "approve", "message": None, "args": None},
            ),
            Assignment(worker_id="bob", claimed_at=now + timedelta(seconds=1)),
        ),
        "estimate": Estimate(
            worker_id="carol", amount=Money.parse("1.25", "USD"), eta_seconds=60, offered_at=now
        ),
        "request_fingerprint": "f" * 64,
        "answer_ttl_seconds": 300,
        "redact": ("args.amount",),
        "policy": ReviewPolicy(
            rule_id="refunds",
            policy_version=3,
            groups=("finance", "ops"),
            quorum=2,
            veto=False,
            on_timeout="approve",
            answer_ttl_seconds=120,
            standing=False,
        ),
        "reached_at": {Status.POSTED: now, Status.ASSIGNED: now + timedelta(seconds=1)},
        "created_at": now,
        "updated_at": now + timedelta(seconds=3),
        "expires_at": now + timedelta(seconds=600),
        "version": 1,
    }
    fields.update(overrides)
    return Task.model_validate(fields)


USD = Currency.USD


def _posting(
    posting_id: str,
    clock: ManualClock,
    *moves: tuple[Account, int],
    kind: PostingKind = PostingKind.DEPOSIT,
    volume: int = 0,
) -> Posting:
    return Posting(
        id=posting_id,
        kind=kind,
        org_id="org-a",
        currency=moves[0][0].currency,
        entries=tuple(Entry(account=a, amount=n) for a, n in moves),
        volume=volume,
        created_at=clock.now(),
        memo={"note": posting_id},
    )


def _event(task: Task, clock: ManualClock, event: Event = Event.CREATE) -> TaskEvent:
    return TaskEvent(
        id=new_id(),
        task_id=task.id,
        org_id=task.org_id,
        at=clock.now(),
        actor="agent",
        actor_role="requester",
        event=event,
        from_status=None if event is Event.CREATE else Status.POSTED,
        to_status=Status.POSTED if event is Event.CREATE else Status.ASSIGNED,
        reason="why not",
        data={"k": [1, "two"]},
    )


class StoreConformance:
    """Every store passes these. See the module docstring for the fixtures to provide."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def engine(self, store: Store, clock: ManualClock) -> Engine:
        return Engine(store, clock=clock)

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

    # ---------------------------------------------------------------- the ledger contract

    async def test_postings_move_money_atomically(self, store: Store, clock: ManualClock) -> None:
        org, funding = Account.org("org-a", USD), Account.funding(USD)
        deposit = _posting("d1", clock, (funding, -500), (org, 500))
        async with store.transaction() as tx:
            await tx.post(deposit)
            assert await tx.find_posting("d1") == deposit
        too_much = _posting("spend", clock, (org, -501), (Account.fees(USD), 501))
        with pytest.raises(InsufficientFunds) as caught:
            async with store.transaction() as tx:
                await tx.post(too_much)
        assert (caught.value.account, caught.value.needed, caught.value.available) == (
            org.id,
            501,
            500,
        )
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.post(deposit)
        async with store.transaction(readonly=True) as tx:
            got = await tx.balances([org.id, funding.id, Account.fees(USD).id])
            assert got == {org.id: 500, funding.id: -500, Account.fees(USD).id: 0}
            assert await tx.ledger_totals() == {USD: 0}
            assert await tx.find_posting("spend") is None

    async def test_a_rolled_back_posting_leaves_no_trace(
        self, store: Store, clock: ManualClock
    ) -> None:
        org = Account.org("org-a", USD)

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            async with store.transaction() as tx:
                await tx.post(_posting("d", clock, (Account.funding(USD), -5), (org, 5)))
                raise Boom
        async with store.transaction(readonly=True) as tx:
            assert await tx.balances([org.id]) == {org.id: 0}
            assert await tx.list_entries(org.id, None, 10) == []
            assert await tx.find_posting("d") is None

    async def test_entries_page_and_sums_scope(self, store: Store, clock: ManualClock) -> None:
        escrow_a = Account.escrow("org-a", "t1", USD)
        escrow_b = Account.escrow("org-a", "t2", USD)
        elsewhere = Account.escrow("org-b", "t3", USD)
        async with store.transaction() as tx:
            for i, account in enumerate((escrow_a, escrow_b, elsewhere, escrow_a)):
                await tx.post(_posting(f"p{i}", clock, (Account.funding(USD), -7), (account, 7)))
        async with store.transaction(readonly=True) as tx:
            first = await tx.list_entries(escrow_a.id, None, 1)
            rest = await tx.list_entries(escrow_a.id, first[0].seq, 10)
            assert [(e.posting_id, e.amount) for e in first + rest] == [("p0", 7), ("p3", 7)]
            assert await tx.sum_balances("org-a", AccountKind.ESCROW, USD) == 21
            assert await tx.sum_balances("org-a", AccountKind.ESCROW, USD, owner="t2") == 7
            assert await tx.sum_balances("org-b", AccountKind.ESCROW, Currency.SATS) == 0

    async def test_spend_counts_resolved_volume_in_the_window(
        self, store: Store, clock: ManualClock
    ) -> None:
        old = clock.now()
        async with store.transaction() as tx:
            await tx.post(
                _posting(
                    "r0",
                    clock,
                    (Account.funding(USD), -3),
                    (Account.fees(USD), 3),
                    kind=PostingKind.RESOLVE,
                    volume=300,
                )
            )
        clock.advance(days=31)
        async with store.transaction() as tx:
            await tx.post(
                _posting(
                    "r1",
                    clock,
                    (Account.funding(USD), -4),
                    (Account.fees(USD), 4),
                    kind=PostingKind.RESOLVE,
                    volume=400,
                )
            )
            await tx.post(
                _posting(
                    "h",
                    clock,
                    (Account.funding(USD), -5),
                    (Account.fees(USD), 5),
                    kind=PostingKind.HOLD,
                    volume=500,
                )
            )
        async with store.transaction(readonly=True) as tx:
            assert await tx.spend_since("org-a", USD, old) == 700
            assert await tx.spend_since("org-a", USD, clock.now() - timedelta(days=30)) == 400

    async def test_versioned_ledger_records(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
        hold = Hold(
            task_id=task.id,
            org_id="org-a",
            reward=Money.parse("1", "USD"),
            slots=2,
            fee=Money.parse("0.10", "USD"),
        )
        now = clock.now()
        due = Settlement(
            id="s1",
            org_id="org-a",
            worker_id="w",
            task_id=task.id,
            amount=Money.parse("1", "USD"),
            due_at=now,
        )
        later = due.model_copy(update={"id": "s2", "due_at": now + timedelta(days=1)})
        payout = PayoutRecord(
            id=new_id(),
            org_id="org-a",
            worker_id="w",
            key="k",
            amount=Money.parse("2", "USD"),
            fee=Money.parse("0", "USD"),
            rail="sandbox",
            created_at=now,
            updated_at=now,
        )
        async with store.transaction() as tx:
            await tx.put_hold(hold, expected_version=None)
            await tx.put_settlement(later, expected_version=None)
            await tx.put_settlement(due, expected_version=None)
            await tx.put_payout(payout, expected_version=None)
        clashes: list[Callable[[Transaction], Awaitable[None]]] = [
            lambda tx: tx.put_hold(hold, expected_version=None),  # the same task twice
            lambda tx: tx.put_payout(  # the same (org, worker, key) twice
                payout.model_copy(update={"id": new_id()}), expected_version=None
            ),
            lambda tx: tx.put_hold(  # a stale version
                hold.model_copy(update={"version": 6}), expected_version=5
            ),
        ]
        for clash in clashes:
            with pytest.raises(ConcurrencyConflict):
                async with store.transaction() as tx:
                    await clash(tx)
        sent = payout.model_copy(update={"status": PayoutStatus.SENT, "version": 2})
        async with store.transaction() as tx:
            await tx.put_hold(
                hold.model_copy(update={"status": HoldStatus.RESOLVED, "version": 2}),
                expected_version=1,
            )
            await tx.put_payout(sent, expected_version=1)
        async with store.transaction(readonly=True) as tx:
            stored = await tx.get_hold(task.id)
            assert stored is not None and (stored.status, stored.version) == (
                HoldStatus.RESOLVED,
                2,
            )
            assert [s.id for s in await tx.due_settlements(now, 10)] == ["s1"]
            assert [s.id for s in await tx.settlements_for_task(task.id)] == ["s1", "s2"]
            assert await tx.find_payout("org-a", "w", "k") == sent
            assert await tx.find_payout("org-b", "w", "k") is None
            assert await tx.payouts_of("org-a", "w") == [sent]
            assert await tx.pending_payouts(10) == []

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

    # ---------------------------------------------------------------- the audit chains

    async def test_audit_chain_records_events_postings_and_notes(
        self, store: Store, clock: ManualClock
    ) -> None:
        task = make_task(clock)
        note = AuditRecord(
            org_id="org-a", at=clock.now(), kind="policy.updated", actor="root", data={"v": 1}
        )
        async with store.transaction() as tx:
            await tx.insert_task(task)
            await tx.append_events([_event(task, clock)])
            await tx.post(
                _posting(
                    "d-1", clock, (Account.funding(USD), -500), (Account.org("org-a", USD), 500)
                )
            )
            await tx.append_audit([note])
            await tx.append_audit(
                [AuditRecord(org_id="org-b", at=clock.now(), kind="x", actor="y")]
            )

        class Boom(Exception):
            pass

        with pytest.raises(Boom):  # rolled back: nothing of it is chained
            async with store.transaction() as tx:
                await tx.append_audit([note])
                await tx.append_events([_event(task, clock, Event.CLAIM)])
                raise Boom
        async with store.transaction() as tx:
            await tx.append_events([_event(task, clock, Event.CLAIM)])
        async with store.transaction(readonly=True) as tx:
            entries = await tx.audit_entries("org-a", 0, 100)
            tail = await tx.audit_entries("org-a", 2, 1)
            head = await tx.audit_head("org-a")
            assert await tx.audit_head("org-c") is None
            assert await tx.audit_orgs() == ["org-a", "org-b"]
            assert len(await tx.audit_entries("org-b", 0, 100)) == 1
        assert [e.kind for e in entries] == [
            "task.create",
            "ledger.posting",
            "policy.updated",
            "task.claim",
        ]
        assert [e.seq for e in entries] == [1, 2, 3, 4]
        assert tail == [entries[2]]
        assert entries[0].task_id == task.id and entries[0].data["data"] == {"k": [1, "two"]}
        funded = [[Account.funding(USD).id, -500], [Account.org("org-a", USD).id, 500]]
        assert entries[1].data["entries"] == funded
        assert entries[2].data == {"v": 1} and entries[2].actor == "root"
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(entries))
        assert head is not None and (head.seq, head.hash) == (4, entries[-1].hash)
        assert verify("org-a", entries, head).ok

    async def test_concurrent_writers_never_fork_the_chain(
        self, store_factory: StoreFactory, clock: ManualClock
    ) -> None:
        engines = [Engine(await store_factory(), clock=clock) for _ in range(4)]

        async def work(engine: Engine, n: int) -> None:
            for i in range(5):
                task = await engine.create(
                    AGENT, {"kind": "review", "action": {"name": "pay", "args": {"n": n, "i": i}}}
                )
                await engine.decide(ALICE if n % 2 else BOB, task.id, Decision.approve())

        await asyncio.gather(*(work(e, n) for n, e in enumerate(engines)))
        report = await engines[0].verify_chain("org-a")
        # each review: create, claim, submit and verify, all on one chain
        assert report.ok, report
        assert report.checked == report.head_seq == 4 * 5 * 4
