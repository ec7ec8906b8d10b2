"""The client: reviews and answers, sync and async, failing closed."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handrail import (
    ConcurrencyConflict,
    Decision,
    DecisionType,
    Handrail,
    InvalidTransition,
    NoAnswer,
    NotEligible,
    ReasonCode,
    SandboxReviewer,
    SandboxRule,
    Status,
    StoreError,
    Task,
    TokenRejected,
    ValidationError,
    WaitTimeout,
)
from handrail._in_process import InProcessSession

SCHEMA = {"type": "object", "required": ["spam"], "properties": {"spam": {"type": "boolean"}}}


@pytest.fixture
def hr() -> Iterator[Handrail]:
    with Handrail.local() as client:
        yield client


def decide_when_asked(
    hr: Handrail, decision: Decision, reviewer: str = "alice"
) -> threading.Thread:
    """A reviewer on another thread who decides the first task that shows up."""

    def run() -> None:
        me = hr.as_reviewer(reviewer)
        task = me.tasks.wait_for_work(timeout=10)[0]
        me.tasks.decide(task.id, decision)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class TestReview:
    @pytest.mark.parametrize(
        "decision",
        [
            Decision.approve(),
            Decision.reject("amount too high"),
            Decision.modify({"to": "ops@example.com"}, "send it to ops"),
            Decision.respond("ask the customer first"),
        ],
        ids=lambda d: d.type.value,
    )
    def test_the_reviewers_decision_comes_back(self, hr: Handrail, decision: Decision) -> None:
        reviewer = decide_when_asked(hr, decision)
        got = hr.review(
            "send_email",
            {"to": "a@example.com"},
            reasoning="customer asked",
            confidence=0.8,
            allowed=["approve", "reject", "modify", "respond"],
        )
        reviewer.join()
        assert got.content() == decision.content()
        assert got.reviewer_id == "alice"
        assert got.decided_at is not None
        assert got.approved == (decision.type in (DecisionType.APPROVE, DecisionType.MODIFY))

    def test_the_task_carries_what_the_reviewer_needs(self, hr: Handrail) -> None:
        seen: list[Task] = []

        def reviewer() -> None:
            me = hr.as_reviewer("alice")
            task = me.tasks.wait_for_work(timeout=10)[0]
            seen.append(task)
            me.tasks.decide(task.id, Decision.approve())

        thread = threading.Thread(target=reviewer)
        thread.start()
        hr.review(
            {"name": "pay", "args": {"amount": "5.00"}},
            reasoning="invoice due",
            confidence=0.3,
            title="Pay invoice 7",
            payload={"invoice": 7},
            risk_tier="high",
            idempotency_key="invoice-7",
        )
        thread.join()
        task = seen[0]
        assert task.action is not None and task.action.args == {"amount": "5.00"}
        assert (task.title, task.risk_tier.value, task.agent_reasoning) == (
            "Pay invoice 7",
            "high",
            "invoice due",
        )
        assert (task.confidence, task.payload) == (0.3, {"invoice": 7})
        # how it was posted is the requester's business, not the reviewer's
        assert (task.idempotency_key, task.created_by) == (None, "requester")
        assert hr.tasks.get(task.id).idempotency_key == "invoice-7"

    def test_no_answer_in_time_is_a_reject_and_withdraws_the_task(self, hr: Handrail) -> None:
        got = hr.review("delete_db", timeout=0.05)
        assert got.type is DecisionType.REJECT
        assert got.message is not None and "No human answered in time" in got.message
        assert not got.approved
        (task,) = hr.tasks.list().items
        assert task.status is Status.CANCELLED
        assert hr.as_reviewer("alice").tasks.queue() == []

    def test_no_answer_in_time_can_raise(self, hr: Handrail) -> None:
        with pytest.raises(WaitTimeout):
            hr.review("delete_db", timeout=0.05, on_timeout="raise")
        (task,) = hr.tasks.list().items
        assert task.status is Status.CANCELLED

    def test_a_decision_that_beats_the_withdrawal_counts(self) -> None:
        class LateSession(InProcessSession):
            """The reviewer decides just as the agent's wait runs out."""

            async def wait(self, task_id: str, timeout: float | None = None) -> Task:
                await self.as_reviewer("alice").decide(task_id, Decision.reject("late but no"))
                raise WaitTimeout(task_id, timeout or 0, "posted")

        with Handrail.local() as hr:
            mine = hr._session
            assert isinstance(mine, InProcessSession)
            racing = Handrail(
                session=LateSession(mine.engine, mine.principal).session(), portal=hr._portal
            )
            got = racing.review("pay", timeout=1)
        assert (got.type, got.message, got.reviewer_id) == (
            DecisionType.REJECT,
            "late but no",
            "alice",
        )

    def test_an_expired_review_is_a_reject(self) -> None:
        with Handrail.local(sweep_interval=None) as hr:
            got = hr.review("pay", sla_seconds=1)
            assert got.type is DecisionType.REJECT
            assert got.message is not None and "expired" in got.message
            assert hr.tasks.list().items[0].status is Status.EXPIRED
            with pytest.raises(WaitTimeout):
                hr.review("pay", sla_seconds=1, on_timeout="raise")

    def test_errors_raise_and_never_approve(self, hr: Handrail) -> None:
        class Broken(InProcessSession):
            async def wait(self, task_id: str, timeout: float | None = None) -> Task:
                raise StoreError("database unreachable")

        mine = hr._session
        assert isinstance(mine, InProcessSession)
        broken = Handrail(session=Broken(mine.engine, mine.principal).session(), portal=hr._portal)
        with pytest.raises(StoreError):
            broken.review("pay")
        with pytest.raises(ValidationError):
            hr.review("pay", allowed=["approve", "sometimes"])
        with pytest.raises(ValueError, match="on_timeout"):
            hr.review("pay", on_timeout="approve")  # type: ignore[arg-type]

    def test_review_with_simulated_reviewers(self) -> None:
        rules = SandboxRule(when={"action.name": "delete_*"}, then=Decision.reject("never delete"))
        with Handrail.local(sandbox=SandboxReviewer(rules)) as hr:
            assert hr.review("send_email").type is DecisionType.APPROVE
            refused = hr.review("delete_users", {"where": "all"})
            assert (refused.type, refused.message, refused.reviewer_id) == (
                DecisionType.REJECT,
                "never delete",
                "sandbox",
            )
            assert all(t.sandbox for t in hr.tasks.list().items)


class TestAsk:
    def test_a_verified_answer_comes_back(self) -> None:
        with Handrail.local(sandbox=SandboxReviewer(script=[{"spam": False}])) as hr:
            assert hr.ask("Is this spam?", SCHEMA, payload={"text": "hi"}) == {"spam": False}

    def test_an_unanswered_question_raises(self, hr: Handrail) -> None:
        def cancel_it() -> None:
            task = hr.as_reviewer("x").tasks.wait_for_work(timeout=10)[0]
            hr.tasks.cancel(task.id, "changed my mind")

        thread = threading.Thread(target=cancel_it)
        thread.start()
        with pytest.raises(NoAnswer) as caught:
            hr.ask("Is this spam?", SCHEMA)
        thread.join()
        assert caught.value.status == "cancelled"
        with pytest.raises(WaitTimeout):
            hr.ask("Is this spam?", SCHEMA, timeout=0.05)


class TestAsync:
    async def test_async_twins_from_another_loop(self) -> None:
        async with Handrail.local() as hr:
            task = await hr.tasks.acreate(kind="judgment", output_schema=SCHEMA)
            assert (await hr.tasks.aget(task.id)).id == task.id
            me = hr.as_reviewer("alice")
            assert [t.id for t in await me.tasks.aqueue()] == [task.id]
            await me.tasks.aclaim(task.id)
            waiting = asyncio.create_task(hr.tasks.await_(task.id, timeout=10))
            await me.tasks.asubmit(task.id, {"spam": True})
            assert (await waiting).output == {"spam": True}
            page = await hr.tasks.alist(status="verified")
            assert [t.id for t in page.items] == [task.id]
            assert len(await hr.tasks.ahistory(task.id)) == 4

    async def test_areview_and_aask(self) -> None:
        async with Handrail.local(sandbox=True) as hr:
            decision = await hr.areview("send_email", {"to": "a@b.c"})
            assert decision.type is DecisionType.APPROVE
            assert await hr.aask("Spam?", SCHEMA) == {"spam": True}

    async def test_async_timeout_rejects(self) -> None:
        async with Handrail.local() as hr:
            got = await hr.areview("pay", timeout=0.05)
            assert got.type is DecisionType.REJECT

    async def test_cancelling_the_caller_stops_the_wait(self) -> None:
        async with Handrail.local() as hr:
            task = await hr.tasks.acreate(kind="review", action={"name": "pay"})
            waiting = asyncio.create_task(hr.tasks.await_(task.id))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert (await hr.tasks.aget(task.id)).status is Status.POSTED


class TestLifetime:
    def test_sqlite_keeps_everything_across_clients(self, tmp_path: Path) -> None:
        db = tmp_path / "h.db"
        with Handrail.local(db) as hr:
            task = hr.tasks.create(kind="review", action={"name": "pay"}, idempotency_key="k")
            hr.as_reviewer("alice").tasks.decide(task.id, Decision.modify({"amount": 1}))
        with Handrail.local(db) as hr:
            again = hr.tasks.get(task.id)
            assert again.decision is not None and again.decision.args == {"amount": 1}
            assert [e.event.value for e in hr.tasks.history(task.id)] == [
                "create",
                "claim",
                "submit",
                "verify",
            ]
            assert (
                hr.tasks.create(kind="review", action={"name": "pay"}, idempotency_key="k").id
                == task.id
            )

    def test_a_closed_client_refuses_work(self) -> None:
        hr = Handrail.local()
        hr.close()
        hr.close()  # closing twice is fine
        with pytest.raises(RuntimeError, match="closed"):
            hr.tasks.list()

    def test_sync_calls_inside_the_clients_loop_are_refused(self, hr: Handrail) -> None:
        async def misuse() -> Any:
            return hr.tasks.list()

        with pytest.raises(RuntimeError, match="own loop"):
            hr._portal.call(misuse())  # type: ignore[attr-defined]

    def test_spec_or_fields_not_both(self, hr: Handrail) -> None:
        with pytest.raises(TypeError):
            hr.tasks.create({"kind": "review"}, action={"name": "x"})
        with pytest.raises(TypeError):
            hr.review({"name": "x"}, {"a": 1})
        with pytest.raises(InvalidTransition):
            hr.tasks.verify(hr.tasks.create(kind="review", action={"name": "x"}).id)


class TestEvents:
    """``tasks.events``: the organisation's history as it happens, in order, resumable."""

    def test_events_follow_the_org_in_order_and_resume_after_a_seq(self, hr: Handrail) -> None:
        before = hr.tasks.create(kind="review", action={"name": "old"})
        with hr.tasks.events() as stream:  # from now on: ``before`` is history
            first = hr.tasks.create(kind="review", action={"name": "pay"})
            hr.as_reviewer("alice").tasks.decide(first.id, Decision.approve())
            seen = [next(stream)]
            while seen[-1].to_status is not Status.VERIFIED:
                seen.append(next(stream))
        assert {e.task_id for e in seen} == {first.id}
        assert seen[0].to_status is Status.POSTED
        assert [e.to_status for e in seen] == [e.to_status for e in hr.tasks.history(first.id)]
        seqs = [e.seq or 0 for e in seen]
        assert seqs == sorted(set(seqs))  # in order, no repeats
        # from a position: everything after it, the task made before the stream included
        with hr.tasks.events(after=0) as again:
            replay = [next(again) for _ in range(1 + len(seen))]
        assert [e.task_id for e in replay] == [before.id] + [first.id] * len(seen)
        assert [e.seq for e in replay[1:]] == [e.seq for e in seen]
        assert list(again) == []  # closed

    async def test_async_events_wake_at_the_change(self, hr: Handrail) -> None:
        async with hr.tasks.aevents() as stream:  # open: the position is fixed here
            made = await hr.tasks.acreate(kind="review", action={"name": "pay"})
            event = await asyncio.wait_for(anext(stream), 5)
        assert (event.task_id, event.to_status) == (made.id, Status.POSTED)

    async def test_a_reader_that_gives_up_loses_nothing(self, hr: Handrail) -> None:
        async with hr.tasks.aevents() as stream:
            with pytest.raises(TimeoutError):  # nothing happens: the reader gives up
                await asyncio.wait_for(anext(stream), 0.05)
            made = await hr.tasks.acreate(kind="review", action={"name": "pay"})
            event = await asyncio.wait_for(anext(stream), 5)  # the read it left goes on
        assert event.task_id == made.id
        await stream.aclose()  # closing twice is harmless

    def test_closing_a_stream_ends_a_read_in_flight(self, hr: Handrail) -> None:
        got: list[Any] = []
        stream = hr.tasks.events()
        reader = threading.Thread(target=lambda: got.extend(stream))
        reader.start()
        reader.join(timeout=0.05)
        assert reader.is_alive()  # blocked: nothing has happened
        stream.close()
        reader.join(timeout=5)
        assert not reader.is_alive() and got == []


class TestPoliciesInProcess:
    """What changed for ``Handrail.local()``: it asks, and decides only as someone else."""

    def test_the_local_client_cannot_decide_its_own_review(self, hr: Handrail) -> None:
        task = hr.tasks.create(kind="review", action={"name": "send_email"})
        with pytest.raises(NotEligible, match="cannot decide its own review"):
            hr.tasks.decide(task.id, Decision.approve())
        assert hr.tasks.queue() == []  # nor does it see it as work
        done = hr.as_reviewer("alice").tasks.decide(task.id, Decision.approve())
        assert done.status is Status.VERIFIED

    def test_policy_decisions_come_back_with_reason_codes(self, hr: Handrail) -> None:
        saved = hr.policy.put(
            {
                "rules": [
                    {"id": "mail", "tools": ["send_email"], "outcome": "allow"},
                    {"id": "prod", "tools": ["drop_*"], "outcome": "deny", "message": "never"},
                ]
            }
        )
        assert saved.version == 1 and hr.policy.get() == saved
        allowed = hr.review("send_email", {"to": "a@b.c"})
        assert allowed.approved and allowed.reason_code is ReasonCode.POLICY_ALLOW
        denied = hr.review("drop_table", {"name": "users"})
        assert (denied.type, denied.message, denied.reason_code) == (
            DecisionType.REJECT,
            "never",
            ReasonCode.POLICY_DENY,
        )
        why = hr.policy.explain("drop_index", {"name": "x"})
        assert [(t.rule_id, t.matched) for t in why.trace] == [("mail", False), ("prod", True)]
        with pytest.raises(ConcurrencyConflict):
            hr.policy.put({"rules": []}, expected_version=0)

    def test_a_timeout_is_a_retryable_no(self, hr: Handrail) -> None:
        got = hr.review("send_email", {"to": "a@b.c"}, timeout=0.05)
        assert (got.type, got.reason_code, got.retryable) == (
            DecisionType.REJECT,
            ReasonCode.TIMEOUT,
            True,
        )

    def test_groups_tokens_and_the_audit_log(self, hr: Handrail) -> None:
        hr.policy.put_group("ops", ["alice"])
        hr.policy.put({"rules": [{"id": "ops", "outcome": "ask", "reviewers": ["ops"]}]})
        task = hr.tasks.create(kind="review", action={"name": "restart"})
        with pytest.raises(NotEligible):
            hr.as_reviewer("bob").tasks.decide(task.id, Decision.approve())
        token, claims = hr.policy.mint_token(task.id, "alice", decision="approve")
        assert claims.reviewer_id == "alice"
        done = hr.policy.redeem_token(token, Decision.approve())
        assert done.status is Status.VERIFIED
        with pytest.raises(TokenRejected):
            hr.policy.redeem_token(token, Decision.approve())
        assert [g.name for g in hr.policy.groups()] == ["ops"]
        report = hr.audit.verify()
        assert report.ok and report.checked >= 6
        out = io.StringIO()
        assert hr.audit.export(out) == report.checked
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [line["seq"] for line in lines] == list(range(1, report.checked + 1))
        assert {"decision.refused", "token.minted", "task.submit"} <= {
            line["kind"] for line in lines
        }
