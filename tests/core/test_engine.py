"""Engine behaviour beyond the conformance suite, on the memory store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from handrail import (
    Decision,
    DecisionNotAllowed,
    Engine,
    Event,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransition,
    ManualClock,
    MemoryStore,
    Money,
    NotAssigned,
    NotFound,
    PermissionDenied,
    Principal,
    Role,
    Status,
    Task,
    ValidationError,
    Verification,
    WaitTimeout,
)
from handrail.store import Transaction

AGENT = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="acme", id="alice", roles=frozenset({Role.REVIEWER}))
BOB = Principal(org_id="acme", id="bob", roles=frozenset({Role.REVIEWER}))
ADMIN = Principal(org_id="acme", id="root", roles=frozenset({Role.ADMIN}))
RIVAL = Principal(org_id="rival", id="agent", roles=frozenset({Role.REQUESTER, Role.REVIEWER}))

SCHEMA = {
    "type": "object",
    "required": ["eligible", "reason_code"],
    "properties": {
        "eligible": {"type": "boolean"},
        "reason_code": {"enum": ["approved", "denied_policy"]},
    },
}
REVIEW = {"kind": "review", "action": {"name": "refund", "args": {"amount": "5.00"}}}
JUDGMENT = {"kind": "judgment", "task_type": "refund_check", "output_schema": SCHEMA}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(clock: ManualClock) -> Engine:
    return Engine(MemoryStore(), clock=clock)


def paths(exc: ValidationError) -> list[str]:
    return [e.path for e in exc.errors]


class TestCreate:
    async def test_invalid_schemas_name_their_paths(self, engine: Engine) -> None:
        with pytest.raises(ValidationError) as caught:
            await engine.create(
                AGENT,
                {"kind": "judgment", "output_schema": {"type": "objekt", "minProperties": -1}},
            )
        assert paths(caught.value) == ["$.output_schema.minProperties", "$.output_schema.type"]
        with pytest.raises(ValidationError) as caught:
            await engine.create(
                AGENT,
                {"kind": "review", "action": {"name": "x", "args_schema": {"properties": []}}},
            )
        assert paths(caught.value) == ["$.action.args_schema.properties"]
        assert (await engine.list(AGENT)).items == ()

    async def test_field_errors_name_their_paths(self, engine: Engine) -> None:
        with pytest.raises(ValidationError) as caught:
            await engine.create(
                AGENT,
                {"kind": "review", "action": {"name": "", "args": []}, "risk_tier": "extreme"},
            )
        assert paths(caught.value) == ["$.risk_tier", "$.action.name", "$.action.args"]
        with pytest.raises(ValidationError) as caught:
            await engine.create(AGENT, {"kind": "judgment"})
        assert caught.value.errors[0].message == "a judgment task needs an 'output_schema'"

    async def test_only_requesters_create(self, engine: Engine) -> None:
        with pytest.raises(PermissionDenied):
            await engine.create(ALICE, REVIEW)

    async def test_task_fields_are_derived(self, engine: Engine, clock: ManualClock) -> None:
        task = await engine.create(
            AGENT, {**REVIEW, "sla_seconds": 90, "payout": {"currency": "USD", "amount": "0.25"}}
        )
        assert task.status is Status.POSTED
        assert task.task_type == "refund"
        assert task.title == "Approve refund"
        assert task.expires_at == clock.now() + timedelta(seconds=90)
        assert task.reached_at == {Status.POSTED: clock.now()}
        assert task.payout == Money.parse("0.25", "USD")
        assert task.created_by == "agent"
        assert not task.sandbox

    async def test_same_key_other_body_conflicts(self, engine: Engine) -> None:
        first = await engine.create(AGENT, {**REVIEW, "idempotency_key": "k"})
        with pytest.raises(IdempotencyConflict) as caught:
            await engine.create(AGENT, {**JUDGMENT, "idempotency_key": "k"})
        assert caught.value.to_dict()["task_id"] == first.id
        # the replay returns the task as it is now, even after it moved on
        await engine.decide(ALICE, first.id, Decision.approve())
        replay = await engine.create(AGENT, {**REVIEW, "idempotency_key": "k"})
        assert replay.status is Status.VERIFIED


class TestTenancy:
    async def test_another_organisation_sees_not_found(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        for call in (
            engine.get(RIVAL, task.id),
            engine.history(RIVAL, task.id),
            engine.claim(RIVAL, task.id),
            engine.decide(RIVAL, task.id, Decision.approve()),
            engine.cancel(RIVAL, task.id),
            engine.wait(RIVAL, task.id, timeout=0.01),
        ):
            with pytest.raises(NotFound):
                await call
        assert await engine.queue(RIVAL) == []
        assert (await engine.get(AGENT, task.id)).version == 1


class TestReviews:
    async def test_claim_is_idempotent_and_release_reopens(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        claimed = await engine.claim(ALICE, task.id)
        assert await engine.claim(ALICE, task.id) == claimed
        with pytest.raises(InvalidTransition, match="no free slot"):
            await engine.claim(BOB, task.id)
        with pytest.raises(NotAssigned):
            await engine.release(BOB, task.id)
        released = await engine.release(ALICE, task.id, "busy")
        assert released.status is Status.POSTED
        assert [t.id for t in await engine.queue(BOB)] == [task.id]
        assert [t.id for t in await engine.queue(ALICE)] == [task.id]  # may take it again

    async def test_decisions_must_be_allowed(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**REVIEW, "allowed_decisions": ["approve", "reject"]})
        with pytest.raises(DecisionNotAllowed) as caught:
            await engine.decide(ALICE, task.id, Decision.respond("try again"))
        assert caught.value.allowed == ("approve", "reject")
        assert (await engine.get(AGENT, task.id)).status is Status.POSTED

    async def test_modify_is_checked_against_args_schema(self, engine: Engine) -> None:
        schema = {
            "type": "object",
            "required": ["to", "amount"],
            "additionalProperties": False,
            "properties": {"to": {"type": "string"}, "amount": {"type": "integer", "maximum": 50}},
        }
        task = await engine.create(
            AGENT, {"kind": "review", "action": {"name": "pay", "args_schema": schema}}
        )
        with pytest.raises(ValidationError) as caught:
            await engine.decide(ALICE, task.id, Decision.modify({"amount": 80, "cc": "x"}))
        assert [(e.path, e.message) for e in caught.value.errors] == [
            ("$.args", "'to' is a required property"),
            ("$.args", "Additional properties are not allowed ('cc' was unexpected)"),
            ("$.args.amount", "80 is greater than the maximum of 50"),
        ]
        done = await engine.decide(ALICE, task.id, Decision.modify({"to": "b", "amount": 40}))
        assert done.decision == Decision.modify({"to": "b", "amount": 40}).model_copy(
            update={
                "reviewer_id": "alice",
                "decided_at": done.updated_at,
                "patch": (  # the edit, as a JSON Patch against the proposed (empty) args
                    {"op": "add", "path": "/to", "value": "b"},
                    {"op": "add", "path": "/amount", "value": 40},
                ),
            }
        )

    async def test_the_same_decision_twice_is_one_decision(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        first = await engine.decide(ALICE, task.id, Decision.reject("too much"))
        assert await engine.decide(ALICE, task.id, Decision.reject("too much")) == first
        with pytest.raises(InvalidTransition, match="already decided"):
            await engine.decide(ALICE, task.id, Decision.approve())
        with pytest.raises(InvalidTransition):
            await engine.decide(BOB, task.id, Decision.approve())
        assert len(await engine.history(AGENT, task.id)) == 4

    async def test_roles_are_enforced(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        with pytest.raises(PermissionDenied, match="reviewer role"):
            await engine.decide(AGENT, task.id, Decision.approve())
        with pytest.raises(PermissionDenied, match="requester role"):
            await engine.cancel(ALICE, task.id)
        with pytest.raises(PermissionDenied, match="admin role"):
            await engine.verify(ALICE, task.id)
        with pytest.raises(PermissionDenied):
            await engine.queue(AGENT)

    async def test_decide_is_for_reviews_and_submit_reads_decisions(self, engine: Engine) -> None:
        judgment = await engine.create(AGENT, JUDGMENT)
        with pytest.raises(ValidationError, match="decisions are for review tasks"):
            await engine.decide(ALICE, judgment.id, Decision.approve())
        review = await engine.create(AGENT, REVIEW)
        done = await engine.submit(ALICE, review.id, {"type": "reject", "message": "no"})
        assert done.decision is not None and done.decision.message == "no"
        with pytest.raises(ValidationError) as caught:
            await engine.submit(ALICE, (await engine.create(AGENT, REVIEW)).id, {"type": "ok"})
        assert paths(caught.value) == ["$.type"]


class TestJudgments:
    async def test_two_agreeing_answers_verify(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**JUDGMENT, "redundancy": 2})
        answer = {"eligible": True, "reason_code": "approved"}
        await engine.claim(ALICE, task.id)
        assert (await engine.claim(BOB, task.id)).open_slots == 0
        partial = await engine.submit(ALICE, task.id, answer)
        assert partial.status is Status.ASSIGNED
        assert await engine.submit(ALICE, task.id, answer) == partial  # replay
        done = await engine.submit(BOB, task.id, answer)
        assert done.status is Status.VERIFIED
        assert done.output == answer
        assert done.verification is not None and done.verification.score == 100

    async def test_disagreement_goes_to_manual_review(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**JUDGMENT, "redundancy": 2})
        for who, eligible in ((ALICE, True), (BOB, False)):
            await engine.claim(who, task.id)
            code = "approved" if eligible else "denied_policy"
            last = await engine.submit(who, task.id, {"eligible": eligible, "reason_code": code})
        assert last.status is Status.MANUAL_REVIEW
        with pytest.raises(ValidationError, match="answers differ"):
            await engine.verify(ADMIN, task.id)
        with pytest.raises(ValidationError):
            await engine.verify(ADMIN, task.id, {"eligible": "maybe"})
        final = {"eligible": False, "reason_code": "denied_policy"}
        done = await engine.verify(ADMIN, task.id, final, reason="policy 4.2")
        assert (done.status, done.output) == (Status.VERIFIED, final)

    async def test_manual_review_can_fail(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**JUDGMENT, "redundancy": 2})
        for who, code in ((ALICE, "approved"), (BOB, "denied_policy")):
            await engine.claim(who, task.id)
            await engine.submit(who, task.id, {"eligible": True, "reason_code": code})
        failed = await engine.fail(ADMIN, task.id, "both wrong")
        assert (failed.status, failed.failure_reason) == (Status.FAILED, "both wrong")
        with pytest.raises(ValidationError):
            await engine.fail(ADMIN, task.id, " ")

    async def test_answers_must_fit_the_schema(self, engine: Engine) -> None:
        task = await engine.create(AGENT, JUDGMENT)
        await engine.claim(ALICE, task.id)
        with pytest.raises(ValidationError) as caught:
            await engine.submit(ALICE, task.id, {"eligible": "yes", "reason_code": "because"})
        assert paths(caught.value) == ["$.output.eligible", "$.output.reason_code"]


class TestSubmitWithoutClaim:
    """A worker that never claimed a judgment task answers it: the engine claims for it in
    the same transaction (the rule every transport follows, the HTTP route included)."""

    async def test_an_open_task_is_claimed_and_answered_in_one_commit(
        self, clock: ManualClock
    ) -> None:
        commits: list[Task] = []
        engine = Engine(MemoryStore(), clock=clock, observers=[lambda _, t: commits.append(t)])
        task = await engine.create(AGENT, JUDGMENT)
        answer = {"eligible": True, "reason_code": "approved"}
        done = await engine.submit(ALICE, task.id, answer)
        assert (done.status, done.output) == (Status.VERIFIED, answer)
        assert [e.event for e in await engine.history(AGENT, task.id)] == [
            Event.CREATE,
            Event.CLAIM,
            Event.SUBMIT,
            Event.VERIFY,
        ]  # as POST /v1/tasks/{id}/submissions records it
        assert len(commits) == 2 and done.version == 2  # the create, then one transaction
        assert await engine.submit(ALICE, task.id, answer) == done  # a replay changes nothing

    async def test_an_answer_that_does_not_fit_claims_nothing(self, engine: Engine) -> None:
        task = await engine.create(AGENT, JUDGMENT)
        with pytest.raises(ValidationError) as caught:
            await engine.submit(ALICE, task.id, {"eligible": "yes", "reason_code": "approved"})
        assert paths(caught.value) == ["$.output.eligible"]
        after = await engine.get(AGENT, task.id)
        assert (after.status, after.assignments, after.version) == (Status.POSTED, (), 1)
        assert [e.event for e in await engine.history(AGENT, task.id)] == [Event.CREATE]
        assert [t.id for t in await engine.queue(ALICE)] == [task.id]  # still open to all

    async def test_the_claim_checks_apply(self, engine: Engine) -> None:
        answer = {"eligible": True, "reason_code": "approved"}
        await engine.put_worker(
            ADMIN, {"id": "alice", "skills": ["translation"], "capacity": 1, "trust_tier": "low"}
        )
        task = await engine.create(AGENT, JUDGMENT)
        with pytest.raises(PermissionDenied, match="does not cover 'refund_check'"):
            await engine.submit(ALICE, task.id, answer)
        assert (await engine.get(AGENT, task.id)).assignments == ()
        estimate_first = await engine.create(
            AGENT, {**JUDGMENT, "require_estimate": True, "payout": None}
        )
        with pytest.raises(InvalidTransition, match="estimate first"):
            await engine.submit(BOB, estimate_first.id, answer)

    async def test_no_free_slot_is_not_assigned(self, engine: Engine) -> None:
        answer = {"eligible": True, "reason_code": "approved"}
        task = await engine.create(AGENT, JUDGMENT)
        await engine.claim(ALICE, task.id)
        with pytest.raises(NotAssigned):  # alice holds the only slot
            await engine.submit(BOB, task.id, answer)
        await engine.submit(ALICE, task.id, answer)
        with pytest.raises(NotAssigned):  # verified: nothing left to take
            await engine.submit(BOB, task.id, answer)
        pair = await engine.create(AGENT, {**JUDGMENT, "redundancy": 2})
        await engine.submit(ALICE, pair.id, answer)
        with pytest.raises(NotAssigned):  # a different answer is not a second one
            await engine.submit(ALICE, pair.id, {**answer, "eligible": False})


class TestEstimates:
    async def test_estimate_first_tasks(self, engine: Engine) -> None:
        spec = {**JUDGMENT, "require_estimate": True, "payout": {"currency": "USD", "amount": "1"}}
        task = await engine.create(AGENT, spec)
        with pytest.raises(InvalidTransition, match="estimate first"):
            await engine.claim(ALICE, task.id)
        with pytest.raises(ValidationError, match="pays in USD"):
            await engine.offer_estimate(ALICE, task.id, amount=Money.parse("5", "SATS"))
        offered = await engine.offer_estimate(
            ALICE, task.id, amount=Money.parse("2.50", "USD"), eta_seconds=300
        )
        assert offered.status is Status.ESTIMATE_PENDING
        assert (await engine.reject_estimate(AGENT, task.id, "too dear")).status is Status.POSTED
        await engine.offer_estimate(BOB, task.id, amount=Money.parse("1.75", "USD"))
        accepted = await engine.approve_estimate(AGENT, task.id)
        assert accepted.status is Status.ASSIGNED
        assert [a.worker_id for a in accepted.assignments] == ["bob"]
        assert accepted.payout == Money.parse("1.75", "USD")
        done = await engine.submit(BOB, task.id, {"eligible": True, "reason_code": "approved"})
        assert done.status is Status.VERIFIED

    async def test_a_worker_withdraws_its_own_estimate(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**JUDGMENT, "require_estimate": True})
        with pytest.raises(InvalidTransition):
            await engine.withdraw_estimate(ALICE, task.id)  # nothing offered yet
        await engine.offer_estimate(ALICE, task.id, eta_seconds=600)
        with pytest.raises(PermissionDenied, match="not theirs"):
            await engine.withdraw_estimate(BOB, task.id)
        with pytest.raises(PermissionDenied):
            await engine.withdraw_estimate(AGENT, task.id)
        reopened = await engine.withdraw_estimate(ALICE, task.id, "cannot make it")
        assert (reopened.status, reopened.estimate) == (Status.POSTED, None)
        last = (await engine.history(AGENT, task.id))[-1]
        assert (last.event, last.actor, last.reason) == (
            Event.WITHDRAW_ESTIMATE,
            "alice",
            "cannot make it",
        )
        await engine.offer_estimate(BOB, task.id, eta_seconds=60)  # open to offers again
        assert (await engine.approve_estimate(AGENT, task.id)).status is Status.ASSIGNED

    async def test_no_estimate_wanted(self, engine: Engine) -> None:
        task = await engine.create(AGENT, JUDGMENT)
        with pytest.raises(InvalidTransition, match="no estimate wanted"):
            await engine.offer_estimate(ALICE, task.id)
        with pytest.raises(InvalidTransition):
            await engine.approve_estimate(AGENT, task.id)


class TestEndings:
    async def test_cancel_is_idempotent_and_final(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        cancelled = await engine.cancel(AGENT, task.id, "not needed")
        assert cancelled.status is Status.CANCELLED
        assert await engine.cancel(AGENT, task.id) == cancelled
        with pytest.raises(InvalidTransition):
            await engine.decide(ALICE, task.id, Decision.approve())
        done = await engine.decide(
            ALICE, (await engine.create(AGENT, REVIEW)).id, Decision.approve()
        )
        with pytest.raises(InvalidTransition, match="cannot cancel from 'verified'"):
            await engine.cancel(AGENT, done.id)

    async def test_dispute_and_resolution(self, engine: Engine) -> None:
        one = await engine.decide(
            ALICE, (await engine.create(AGENT, REVIEW)).id, Decision.approve()
        )
        two = await engine.decide(
            ALICE, (await engine.create(AGENT, REVIEW)).id, Decision.approve()
        )
        with pytest.raises(ValidationError):
            await engine.dispute(AGENT, one.id, "")
        assert (await engine.dispute(AGENT, one.id, "wrong")).status is Status.DISPUTED
        await engine.dispute(AGENT, two.id, "wrong")
        upheld = await engine.resolve_dispute(ADMIN, one.id, uphold=True, reason="was right")
        overturned = await engine.resolve_dispute(ADMIN, two.id, uphold=False, reason="was not")
        assert upheld.status is Status.VERIFIED
        assert (overturned.status, overturned.failure_reason) == (Status.FAILED, "was not")

    async def test_acting_on_a_due_task_expires_it(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        task = await engine.create(AGENT, {**REVIEW, "sla_seconds": 30})
        clock.advance(30)
        with pytest.raises(InvalidTransition, match="deadline passed"):
            await engine.decide(ALICE, task.id, Decision.approve())
        expired = await engine.get(AGENT, task.id)
        assert expired.status is Status.EXPIRED
        last = (await engine.history(AGENT, task.id))[-1]
        assert (last.event, last.actor, last.actor_role) == (Event.EXPIRE, "sla", "system")


class TestWait:
    async def test_wait_returns_the_decided_task(self, clock: ManualClock) -> None:
        engine = Engine(MemoryStore(), clock=clock, wait_backstop=3600)
        task = await engine.create(AGENT, REVIEW)
        waiter = asyncio.create_task(engine.wait(AGENT, task.id))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await engine.decide(ALICE, task.id, Decision.approve())
        # with an hour-long backstop, only the notification can wake it in time
        done = await asyncio.wait_for(waiter, 5)
        assert done.status is Status.VERIFIED

    async def test_wait_times_out_without_changing_the_task(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        with pytest.raises(WaitTimeout) as caught:
            await engine.wait(AGENT, task.id, timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.status == "posted"
        assert (await engine.get(AGENT, task.id)).version == 1

    async def test_wait_expires_a_due_task(self, engine: Engine, clock: ManualClock) -> None:
        task = await engine.create(AGENT, {**REVIEW, "sla_seconds": 5})
        clock.advance(6)
        assert (await engine.wait(AGENT, task.id)).status is Status.EXPIRED

    async def test_many_waiters_on_one_task(self, clock: ManualClock) -> None:
        engine = Engine(MemoryStore(), clock=clock, wait_backstop=3600)
        task = await engine.create(AGENT, REVIEW)
        waiters = [asyncio.create_task(engine.wait(AGENT, task.id)) for _ in range(50)]
        await asyncio.sleep(0.01)
        await engine.cancel(AGENT, task.id)
        done = await asyncio.wait_for(asyncio.gather(*waiters), 5)
        assert {t.status for t in done} == {Status.CANCELLED}

    async def test_wait_for_work_wakes_on_new_tasks(self, engine: Engine) -> None:
        assert await engine.wait_for_work(ALICE, timeout=0.01) == []
        watcher = asyncio.create_task(engine.wait_for_work(ALICE))
        await asyncio.sleep(0.01)
        task = await engine.create(AGENT, REVIEW)
        found = await asyncio.wait_for(watcher, 5)
        assert [t.id for t in found] == [task.id]
        assert await engine.wait_for_work(ALICE, timeout=0.01, skip={task.id}) == []


class _Recorder:
    """An escrow that records its calls and can refuse a hold."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.refuse = refuse

    async def on_create(self, tx: Transaction, task: Task) -> None:
        if self.refuse:
            raise InsufficientFunds("org:acme", "USD", 50, 10)
        self.calls.append(("hold", task.id))

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        self.calls.append((event.value, before.status.value, after.status.value))


class TestHooks:
    async def test_escrow_sees_every_transition(self, clock: ManualClock) -> None:
        escrow = _Recorder()
        engine = Engine(MemoryStore(), clock=clock, escrow=escrow)
        task = await engine.create(AGENT, REVIEW)
        await engine.decide(ALICE, task.id, Decision.approve())
        assert escrow.calls == [
            ("hold", task.id),
            ("claim", "posted", "assigned"),
            ("submit", "assigned", "submitted"),
            ("verify", "submitted", "verified"),
        ]

    async def test_a_refused_hold_creates_nothing(self, clock: ManualClock) -> None:
        engine = Engine(MemoryStore(), clock=clock, escrow=_Recorder(refuse=True))
        with pytest.raises(InsufficientFunds) as caught:
            await engine.create(AGENT, REVIEW)
        assert caught.value.to_dict()["needed"] == 50
        assert (await engine.list(AGENT)).items == ()
        assert await engine.store.last_seq() == 0

    async def test_a_verifier_may_ask_for_new_answers(self, clock: ManualClock) -> None:
        verdicts = iter(["repost", "repost"])  # the second has no attempt left: it fails

        class Picky:
            def plan(self, task: Task) -> Task:
                return task.model_copy(update={"max_attempts": 2})

            async def verify(self, tx: Transaction, task: Task) -> Verification:
                return Verification(outcome=next(verdicts), score=10, reasons=("looks off",))  # type: ignore[arg-type]

        engine = Engine(MemoryStore(), clock=clock, verifier=Picky())
        task = await engine.create(AGENT, JUDGMENT)
        await engine.claim(ALICE, task.id)
        answer: dict[str, Any] = {"eligible": True, "reason_code": "approved"}
        reposted = await engine.submit(ALICE, task.id, answer)
        assert (reposted.status, reposted.open_slots) == (Status.POSTED, 1)
        await engine.claim(BOB, task.id)
        failed = await engine.submit(BOB, task.id, answer)
        assert (failed.status, failed.failure_reason) == (Status.FAILED, "looks off")


class TestLists:
    async def test_pages_and_bad_filters(self, engine: Engine) -> None:
        made = [await engine.create(AGENT, REVIEW) for _ in range(5)]
        first = await engine.list(AGENT, limit=2)
        assert [t.id for t in first.items] == [t.id for t in made[:2]]
        assert first.has_more
        rest = await engine.list(AGENT, after=first.next_cursor, limit=10)
        assert [t.id for t in rest.items] == [t.id for t in made[2:]]
        assert rest.next_cursor is None
        with pytest.raises(ValidationError, match="limit"):
            await engine.list(AGENT, limit=0)
        with pytest.raises(ValidationError):
            await engine.list(AGENT, status="pending")
        assert len((await engine.list(AGENT, status=["posted", "verified"])).items) == 5


class TestQuorumOfReviewers:
    async def test_reviewers_agree_on_content_not_on_who(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**REVIEW, "redundancy": 2})
        await engine.decide(ALICE, task.id, Decision.reject("no"))
        done = await engine.decide(BOB, task.id, Decision.reject("no"))
        assert done.status is Status.VERIFIED
        assert done.decision is not None and done.decision.reviewer_id == "alice"

    async def test_split_reviewers_go_to_manual_review(self, engine: Engine) -> None:
        task = await engine.create(AGENT, {**REVIEW, "redundancy": 2})
        await engine.decide(ALICE, task.id, Decision.approve())
        split = await engine.decide(BOB, task.id, Decision.reject("no"))
        assert split.status is Status.MANUAL_REVIEW
        with pytest.raises(ValidationError, match="choose the output"):
            await engine.verify(ADMIN, task.id)
        with pytest.raises(ValidationError) as caught:
            await engine.verify(ADMIN, task.id, {"type": "modify"})
        assert paths(caught.value) == ["$.output"]
        done = await engine.verify(ADMIN, task.id, {"type": "reject", "message": "policy"})
        assert done.decision is not None and done.decision.message == "policy"

    async def test_filters_name_the_bad_field(self, engine: Engine) -> None:
        with pytest.raises(ValidationError) as caught:
            await engine.queue(ALICE, risk_tier="extreme")
        assert paths(caught.value) == ["$.risk_tier"]
        assert "low, medium, high, critical" in caught.value.errors[0].message
        with pytest.raises(ValidationError) as caught:
            await engine.list(AGENT, kind="poll")
        assert paths(caught.value) == ["$.kind"]
