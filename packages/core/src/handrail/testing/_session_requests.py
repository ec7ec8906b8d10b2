"""The requester's operations, as conformance cases: create, get, list, history, cancel,
wait, the event stream, estimates and disputes."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from ..errors import (
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
    WaitTimeout,
)
from ..lifecycle import Event, Status
from ..models import Kind, Task
from ..session import Session
from ._session_kit import SessionCases, judgment, next_event, refused, review

__all__ = ["RequestCases", "verified_judgment"]


async def verified_judgment(requester: Session, reviewer: Session) -> Task:
    """A judgment task claimed and answered by ``reviewer``: verified."""
    task = await requester.create(judgment())
    await reviewer.claim(task.id)
    done = await reviewer.submit(task.id, {"label": "cat"})
    assert done.status is Status.VERIFIED
    return done


class RequestCases(SessionCases):
    async def test_session_knows_its_principal_and_the_time(self, requester: Session) -> None:
        assert isinstance(requester, Session)
        assert requester.principal_id
        now = requester.now()
        assert now.tzinfo is not None
        assert abs(now - datetime.now(UTC)) < timedelta(minutes=5)

    async def test_create_and_get(self, requester: Session) -> None:
        task = await requester.create(review(title="Send it?"))
        assert (task.kind, task.status, task.title) == (Kind.REVIEW, Status.POSTED, "Send it?")
        assert task.created_by == requester.principal_id
        assert task.task_type == "send_email"
        assert await requester.get(task.id) == task
        error = await refused(NotFound, requester.get("no-such-task"))
        assert (error.code, error.resource, error.id) == ("not_found", "task", "no-such-task")

    async def test_create_is_idempotent_by_key(self, requester: Session) -> None:
        first = await requester.create(review(idempotency_key="once"))
        again = await requester.create(review(idempotency_key="once"))
        assert again.id == first.id
        page = await requester.list()
        assert [t.id for t in page.items] == [first.id]

    async def test_create_refuses_invalid_specs(self, requester: Session) -> None:
        error = await refused(ValidationError, requester.create({"kind": "review"}))
        assert error.code == "validation_error"
        assert error.errors and all(e.path.startswith("$") for e in error.errors)
        error = await refused(ValidationError, requester.create(judgment(output_schema=None)))
        assert error.errors

    async def test_list_filters_and_pages(self, requester: Session) -> None:
        email = await requester.create(review())
        label = await requester.create(judgment())
        gone = await requester.cancel((await requester.create(review("refund"))).id)
        everything = await requester.list()
        assert [t.id for t in everything.items] == [email.id, label.id, gone.id]
        assert not everything.has_more
        by_status = await requester.list(status="cancelled")
        assert [t.id for t in by_status.items] == [gone.id]
        by_statuses = await requester.list(status=[Status.POSTED, Status.CANCELLED])
        assert len(by_statuses.items) == 3
        assert [t.id for t in (await requester.list(kind="judgment")).items] == [label.id]
        assert [t.id for t in (await requester.list(task_type="refund")).items] == [gone.id]
        first = await requester.list(limit=2)
        assert [t.id for t in first.items] == [email.id, label.id] and first.has_more
        rest = await requester.list(limit=2, after=first.next_cursor)
        assert [t.id for t in rest.items] == [gone.id] and not rest.has_more
        newest = await requester.list(limit=1, newest_first=True)
        assert [t.id for t in newest.items] == [gone.id]
        await refused(ValidationError, requester.list(limit=0))

    async def test_history_is_every_step(self, requester: Session, alice: Session) -> None:
        task = await verified_judgment(requester, alice)
        steps = await requester.history(task.id)
        assert steps[0].event is Event.CREATE and steps[0].to_status is Status.POSTED
        assert steps[0].actor == requester.principal_id
        assert steps[-1].to_status is Status.VERIFIED
        assert [e.task_id for e in steps] == [task.id] * len(steps)
        await refused(NotFound, requester.history("no-such-task"))

    async def test_cancel(self, requester: Session, alice: Session) -> None:
        task = await requester.create(review())
        cancelled = await requester.cancel(task.id, "changed my mind")
        assert cancelled.status is Status.CANCELLED
        assert (await requester.history(task.id))[-1].reason == "changed my mind"
        again = await requester.cancel(task.id)
        assert again.status is Status.CANCELLED and again.version == cancelled.version
        answered = await verified_judgment(requester, alice)
        error = await refused(InvalidTransition, requester.cancel(answered.id))
        assert (error.code, error.task_id) == ("invalid_transition", answered.id)
        assert (error.from_status, error.event) == ("verified", "cancel")
        await refused(NotFound, requester.cancel("no-such-task"))

    async def test_wait_returns_the_finished_task(self, requester: Session, alice: Session) -> None:
        task = await requester.create(review())

        async def decide_soon() -> None:
            await asyncio.sleep(0.2)
            await alice.decide(task.id, {"type": "approve"})

        deciding = asyncio.ensure_future(decide_soon())
        done = await requester.wait(task.id, timeout=10)
        await deciding
        assert done.status is Status.VERIFIED and done.output is not None
        assert (await requester.wait(task.id, timeout=0)).status is Status.VERIFIED

    async def test_wait_times_out(self, requester: Session) -> None:
        task = await requester.create(review())
        error = await refused(WaitTimeout, requester.wait(task.id, timeout=0.3))
        assert isinstance(error, TimeoutError)
        assert (error.code, error.task_id, error.status) == ("wait_timeout", task.id, "posted")
        await refused(WaitTimeout, requester.wait(task.id, timeout=0))
        await refused(NotFound, requester.wait("no-such-task", timeout=1))

    async def test_events_in_order_after_and_from_now(
        self, requester: Session, alice: Session
    ) -> None:
        stream = await requester.events()
        try:
            task = await verified_judgment(requester, alice)
            steps = await requester.history(task.id)
            seen = [await next_event(stream) for _ in steps]
        finally:
            await stream.aclose()
        assert [(e.id, e.event, e.to_status) for e in seen] == [
            (e.id, e.event, e.to_status) for e in steps
        ]
        seqs = [e.seq for e in seen if e.seq is not None]
        assert len(seqs) == len(seen) and seqs == sorted(seqs)
        resumed = await requester.events(after=seqs[0])
        try:
            assert (await next_event(resumed)).id == seen[1].id
        finally:
            await resumed.aclose()
        fresh = await requester.events()
        try:
            later = await requester.create(review())
            first = await next_event(fresh)
            assert (first.task_id, first.event) == (later.id, Event.CREATE)
        finally:
            await fresh.aclose()

    async def test_events_are_the_organisations_own(
        self, requester: Session, outsider: Session
    ) -> None:
        stream = await outsider.events()
        try:
            await requester.create(review())
            mine = await outsider.create(review())
            assert (await next_event(stream)).task_id == mine.id
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def test_estimates_offered_approved_and_rejected(
        self, requester: Session, alice: Session, bob: Session
    ) -> None:
        task = await requester.create(judgment(require_estimate=True))
        early = await refused(InvalidTransition, alice.claim(task.id))
        assert early.task_id == task.id
        offered = await alice.offer_estimate(task.id, eta_seconds=600, note="ok")
        assert offered.status is Status.ESTIMATE_PENDING and offered.estimate is not None
        assert (offered.estimate.worker_id, offered.estimate.eta_seconds) == ("alice", 600)
        rejected = await requester.reject_estimate(task.id, "too slow")
        assert (rejected.status, rejected.estimate) == (Status.POSTED, None)
        error = await refused(InvalidTransition, requester.approve_estimate(task.id))
        assert (error.from_status, error.event) == ("posted", "approve_estimate")
        await bob.offer_estimate(task.id, eta_seconds=60)
        approved = await requester.approve_estimate(task.id)
        assert approved.status is Status.ASSIGNED
        assert [a.worker_id for a in approved.assignments] == ["bob"]
        bad = await refused(ValidationError, alice.offer_estimate(task.id, eta_seconds=0))
        assert [e.path for e in bad.errors] == ["$.eta_seconds"]
        plain = await requester.create(judgment())
        unwanted = await refused(InvalidTransition, alice.offer_estimate(plain.id, eta_seconds=9))
        assert unwanted.task_id == plain.id

    async def test_estimates_withdrawn(
        self, requester: Session, alice: Session, bob: Session
    ) -> None:
        task = await requester.create(judgment(require_estimate=True))
        await alice.offer_estimate(task.id, eta_seconds=60)
        error = await refused(PermissionDenied, bob.withdraw_estimate(task.id))
        assert error.code == "permission_denied"
        withdrawn = await alice.withdraw_estimate(task.id, "busy")
        assert (withdrawn.status, withdrawn.estimate) == (Status.POSTED, None)
        again = await refused(InvalidTransition, alice.withdraw_estimate(task.id))
        assert (again.from_status, again.event) == ("posted", "withdraw_estimate")

    async def test_dispute_and_resolve(
        self, requester: Session, alice: Session, admin: Session
    ) -> None:
        task = await verified_judgment(requester, alice)
        blank = await refused(ValidationError, requester.dispute(task.id, ""))
        assert [e.path for e in blank.errors] == ["$.reason"]
        disputed = await requester.dispute(task.id, "it was a dog")
        assert disputed.status is Status.DISPUTED
        upheld = await admin.resolve_dispute(task.id, uphold=True, reason="a cat")
        assert upheld.status is Status.VERIFIED
        await requester.dispute(task.id, "still a dog")
        overturned = await admin.resolve_dispute(task.id, uphold=False, reason="a dog")
        assert (overturned.status, overturned.failure_reason) == (Status.FAILED, "a dog")
        error = await refused(InvalidTransition, requester.dispute(task.id, "again"))
        assert (error.from_status, error.event) == ("failed", "dispute")
        open_one = await requester.create(review())
        error = await refused(
            InvalidTransition, admin.resolve_dispute(open_one.id, uphold=True, reason="x")
        )
        assert error.from_status == "posted"
        await refused(PermissionDenied, alice.resolve_dispute(task.id, uphold=True, reason="x"))
