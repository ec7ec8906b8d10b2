"""The reviewer's operations, as conformance cases: the queue and waiting for work, claim,
release and assign, submissions and decisions, and manual verification."""

from __future__ import annotations

import asyncio

from ..errors import (
    DecisionNotAllowed,
    InvalidTransition,
    NotAssigned,
    NotEligible,
    PermissionDenied,
    ValidationError,
)
from ..lifecycle import Status
from ..models import AssignmentStatus, Task
from ..session import Session
from ._session_kit import SessionCases, judgment, refused, review

__all__ = ["WorkCases"]


def _ids(tasks: list[Task]) -> set[str]:
    return {t.id for t in tasks}


async def _disagreeing(requester: Session, alice: Session, bob: Session) -> Task:
    """A judgment two reviewers answered differently, at its cap: in manual review."""
    task = await requester.create(judgment(redundancy=2, max_answers=2))
    for who, label in ((alice, "cat"), (bob, "dog")):
        await who.claim(task.id)
        await who.submit(task.id, {"label": label})
    found = await requester.get(task.id)
    assert found.status is Status.MANUAL_REVIEW
    return found


class WorkCases(SessionCases):
    async def test_queue_filters(self, requester: Session, alice: Session) -> None:
        email = await requester.create(review(sla_seconds=3600))
        low = await requester.create(judgment(risk_tier="low", sla_seconds=600))
        high = await requester.create(judgment(risk_tier="high", sla_seconds=1800))
        everything = await alice.queue()
        assert [t.id for t in everything] == [low.id, high.id, email.id]  # soonest deadline
        assert _ids(await alice.queue(kind="judgment")) == {low.id, high.id}
        assert _ids(await alice.queue(kind="review")) == {email.id}
        assert _ids(await alice.queue(task_type="label")) == {low.id, high.id}
        assert _ids(await alice.queue(risk_tier="low")) == {low.id}
        assert len(await alice.queue(limit=1)) == 1
        error = await refused(ValidationError, alice.queue(limit=0))
        assert error.code == "validation_error"

    async def test_page_limits_are_validated(self, requester: Session, admin: Session) -> None:
        """A limit out of range is a ValidationError at ``$.limit``, wherever it is."""
        error = await refused(ValidationError, requester.list(limit=0))
        assert [e.path for e in error.errors] == ["$.limit"]
        error = await refused(ValidationError, admin.queue(limit=0))
        assert [e.path for e in error.errors] == ["$.limit"]
        error = await refused(ValidationError, admin.audit_entries(limit=0))
        assert [e.path for e in error.errors] == ["$.limit"]

    async def test_wait_for_work(self, requester: Session, alice: Session) -> None:
        assert await alice.wait_for_work(timeout=0.3) == []

        async def post_soon() -> Task:
            await asyncio.sleep(0.2)
            return await requester.create(review())

        posting = asyncio.ensure_future(post_soon())
        found = await alice.wait_for_work(timeout=10)
        assert [t.id for t in found] == [(await posting).id]

    async def test_wait_for_work_filters(self, requester: Session, alice: Session) -> None:
        """task_type, risk_tier, limit and skip, each proven to leave something out."""
        email = await requester.create(review())
        low = await requester.create(judgment(risk_tier="low"))
        high = await requester.create(judgment(risk_tier="high"))
        wait = alice.wait_for_work
        assert _ids(await wait(timeout=5)) == {email.id, low.id, high.id}
        assert _ids(await wait(timeout=5, kind="review")) == {email.id}
        assert _ids(await wait(timeout=5, task_type="label")) == {low.id, high.id}
        assert _ids(await wait(timeout=5, risk_tier="low")) == {low.id}
        assert len(await wait(timeout=5, limit=2)) == 2
        assert _ids(await wait(timeout=5, skip=[email.id])) == {low.id, high.id}
        assert await wait(timeout=0.3, task_type="label", risk_tier="medium") == []
        everything = [email.id, low.id, high.id]
        assert await wait(timeout=0.3, skip=everything) == []

        async def post_soon() -> Task:
            await asyncio.sleep(0.3)
            return await requester.create(judgment(risk_tier="low"))

        posting = asyncio.ensure_future(post_soon())
        found = await wait(timeout=10, skip=everything)  # woken by the new task
        assert [t.id for t in found] == [(await posting).id]

    async def test_wait_for_work_skips_before_it_limits(
        self, requester: Session, alice: Session
    ) -> None:
        """``limit`` counts what is left after ``skip``: skipped tasks do not hide others."""
        first = await requester.create(judgment(sla_seconds=600))
        second = await requester.create(judgment(sla_seconds=1200))
        found = await alice.wait_for_work(timeout=2, limit=1, skip=[first.id])
        assert [t.id for t in found] == [second.id]

    async def test_claim_and_release(self, requester: Session, alice: Session) -> None:
        task = await requester.create(judgment())
        claimed = await alice.claim(task.id)
        assert claimed.status is Status.ASSIGNED
        held = claimed.active_assignment("alice")
        assert held is not None and held.status is AssignmentStatus.ACTIVE
        assert (await alice.claim(task.id)).version == claimed.version  # changes nothing
        assert task.id not in _ids(await alice.queue())
        released = await alice.release(task.id, "no time")
        assert (released.status, released.active_assignment("alice")) == (Status.POSTED, None)
        error = await refused(NotAssigned, alice.release(task.id))
        assert (error.code, error.task_id, error.worker_id) == ("not_assigned", task.id, "alice")
        cancelled = await requester.cancel(task.id)
        error2 = await refused(InvalidTransition, alice.claim(cancelled.id))
        assert (error2.from_status, error2.event) == ("cancelled", "claim")

    async def test_assign(
        self, requester: Session, admin: Session, alice: Session, bob: Session
    ) -> None:
        task = await requester.create(judgment())
        pushed = await admin.assign(task.id, "bob")
        assert pushed.status is Status.ASSIGNED
        assert pushed.active_assignment("bob") is not None
        assert (await bob.submit(task.id, {"label": "dog"})).status is Status.VERIFIED
        other = await requester.create(judgment())
        error = await refused(PermissionDenied, alice.assign(other.id, "alice"))
        assert error.code == "permission_denied"

    async def test_submit_on_a_claimed_judgment(self, requester: Session, alice: Session) -> None:
        task = await requester.create(judgment())
        await alice.claim(task.id)
        bad = await refused(ValidationError, alice.submit(task.id, {"label": "owl"}))
        assert bad.code == "validation_error"
        assert [e.path for e in bad.errors] == ["$.output.label"]
        done = await alice.submit(task.id, {"label": "cat"})
        assert (done.status, done.output) == (Status.VERIFIED, {"label": "cat"})
        assert (await alice.submit(task.id, {"label": "cat"})).version == done.version

    async def test_submit_without_claim(self, requester: Session, alice: Session) -> None:
        """A reviewer answers an open judgment without claiming it: the answer is taken as
        if claimed first. An answer that does not fit claims nothing."""
        misfit = await requester.create(judgment())
        bad = await refused(ValidationError, alice.submit(misfit.id, {"label": "owl"}))
        assert [e.path for e in bad.errors] == ["$.output.label"]
        untouched = await requester.get(misfit.id)
        assert (untouched.status, untouched.assignments) == (Status.POSTED, ())
        task = await requester.create(judgment())
        done = await alice.submit(task.id, {"label": "cat"})
        assert (done.status, done.output) == (Status.VERIFIED, {"label": "cat"})
        assert [(a.worker_id, a.status) for a in done.assignments] == [
            ("alice", AssignmentStatus.SUBMITTED)
        ]

    async def test_submit_without_claim_that_does_not_fit(
        self, requester: Session, alice: Session
    ) -> None:
        task = await requester.create(judgment())
        bad = await refused(ValidationError, alice.submit(task.id, {"label": "owl"}))
        assert [e.path for e in bad.errors] == ["$.output.label"]
        untouched = await requester.get(task.id)
        assert (untouched.status, untouched.assignments) == (Status.POSTED, ())
        assert task.id in _ids(await alice.queue())

    async def test_submit_on_a_review_is_a_decision(
        self, requester: Session, alice: Session
    ) -> None:
        task = await requester.create(review())
        done = await alice.submit(task.id, {"type": "reject", "message": "not today"})
        assert done.status is Status.VERIFIED and done.decision is not None
        assert (done.decision.type.value, done.decision.message) == ("reject", "not today")

    async def test_decide_approve_reject_modify(self, requester: Session, alice: Session) -> None:
        approved = await alice.decide((await requester.create(review())).id, {"type": "approve"})
        assert approved.status is Status.VERIFIED and approved.decision is not None
        assert (approved.decision.type.value, approved.decision.reviewer_id) == (
            "approve",
            "alice",
        )
        rejected = await alice.decide(
            (await requester.create(review())).id, {"type": "reject", "message": "no"}
        )
        assert rejected.decision is not None
        assert (rejected.decision.type.value, rejected.decision.message) == ("reject", "no")
        task = await requester.create(review())
        edited = {"type": "modify", "args": {"to": "ops@example.com"}, "message": "ops"}
        modified = await alice.decide(task.id, edited)
        assert modified.decision is not None
        assert modified.decision.type.value == "modify"
        assert modified.decision.args == {"to": "ops@example.com"}
        again = await alice.decide(task.id, edited)
        assert again.version == modified.version  # the same decision again changes nothing

    async def test_decide_refusals(
        self, requester: Session, admin: Session, alice: Session
    ) -> None:
        task = await requester.create(review(allowed_decisions=["approve", "reject"]))
        error = await refused(
            DecisionNotAllowed, alice.decide(task.id, {"type": "modify", "args": {"to": "x"}})
        )
        assert (error.code, error.task_id, error.decision) == (
            "decision_not_allowed",
            task.id,
            "modify",
        )
        assert set(error.allowed) == {"approve", "reject"}
        open_one = await requester.create(review())
        misfit = await refused(
            ValidationError, alice.decide(open_one.id, {"type": "modify", "args": {"to": 5}})
        )
        assert misfit.errors and all(e.path.startswith("$.args") for e in misfit.errors)
        garbage = await refused(ValidationError, alice.decide(open_one.id, {"type": "maybe"}))
        assert garbage.errors
        assert (await requester.get(open_one.id)).status is Status.POSTED
        own = await admin.create(review())
        mine = await refused(NotEligible, admin.decide(own.id, {"type": "approve"}))
        assert (mine.code, mine.task_id) == ("not_eligible", own.id)
        await refused(PermissionDenied, requester.decide(open_one.id, {"type": "approve"}))

    async def test_verify_and_fail_in_manual_review(
        self, requester: Session, admin: Session, alice: Session, bob: Session
    ) -> None:
        task = await _disagreeing(requester, alice, bob)
        undecided = await refused(ValidationError, admin.verify(task.id))
        assert [e.path for e in undecided.errors] == ["$.output"]
        misfit = await refused(ValidationError, admin.verify(task.id, {"label": "owl"}))
        assert [e.path for e in misfit.errors] == ["$.output.label"]
        await refused(PermissionDenied, alice.verify(task.id, {"label": "cat"}))
        verified = await admin.verify(task.id, {"label": "cat"}, reason="a cat")
        assert (verified.status, verified.output) == (Status.VERIFIED, {"label": "cat"})
        error = await refused(InvalidTransition, admin.verify(task.id, {"label": "cat"}))
        assert (error.from_status, error.event) == ("verified", "verify")

        second = await _disagreeing(requester, alice, bob)
        await refused(PermissionDenied, alice.fail(second.id, "unreadable"))
        blank = await refused(ValidationError, admin.fail(second.id, ""))
        assert [e.path for e in blank.errors] == ["$.reason"]
        failed = await admin.fail(second.id, "unreadable")
        assert (failed.status, failed.failure_reason) == (Status.FAILED, "unreadable")
        again = await refused(InvalidTransition, admin.fail(second.id, "x"))
        assert (again.from_status, again.event) == ("failed", "fail")
