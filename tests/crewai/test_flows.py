"""Flows: ``@human_feedback`` pauses durably at a Handrail review and resumes on the decision.

Each test pauses a flow with one client and one Flow object, closes them, and resumes with
a new client and a new Flow object over the same files (Handrail's SQLite store and the
flow's SQLite persistence): nothing is carried over in memory. The decision routes the
flow without any LLM: ``ScriptedLLM`` is never given to the flow, and the tests are
offline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.flow import Flow, listen, start
from crewai.flow.flow_config import flow_config
from crewai.flow.human_feedback import human_feedback
from crewai.flow.persistence import SQLiteFlowPersistence

from handrail import Decision, DecisionType, Handrail, Status, WaitTimeout
from handrail_crewai import HandrailFeedbackProvider, ReviewNotGiven, aresume_flow, resume_flow
from handrail_crewai import review_task_id as task_of

DRAFT = "Dear Alice, your refund of $120 is on its way."
SENT: list[Any] = []


class RefundFlow(Flow[dict[str, Any]]):
    @start()
    @human_feedback(message="Send this refund email?", emit=["approved", "rejected"])
    def draft(self) -> str:
        return DRAFT

    @listen("approved")
    def send(self) -> str:
        SENT.append(self.last_human_feedback.output)  # type: ignore[union-attr]
        return f"sent: {self.last_human_feedback.output}"  # type: ignore[union-attr]

    @listen("rejected")
    def drop(self) -> str:
        return f"dropped: {self.last_human_feedback.feedback}"  # type: ignore[union-attr]


class TriageFlow(Flow[dict[str, Any]]):
    """Outcomes not named after decisions: the provider is told how they map."""

    @start()
    @human_feedback(message="Escalate?", emit=["escalate", "close", "ask_customer"])
    def triage(self) -> dict[str, Any]:
        return {"ticket": "T-1", "summary": "refund twice"}

    @listen("escalate")
    def on_escalate(self) -> str:
        return "escalated"

    @listen("close")
    def on_close(self) -> str:
        return "closed"

    @listen("ask_customer")
    def on_ask_customer(self) -> str:
        return f"asked: {self.last_human_feedback.feedback}"  # type: ignore[union-attr]


class NoteFlow(Flow[dict[str, Any]]):
    """No ``emit``: the decision is recorded, nothing routes on it."""

    @start()
    @human_feedback(message="Any notes?")
    def write(self) -> str:
        return "note"

    @listen(write)
    def after(self) -> dict[str, Any]:
        result = self.last_human_feedback
        assert result is not None
        return {"feedback": result.feedback, "decision": result.metadata["handrail"]["decision"]}


class Files:
    def __init__(self, root: Path) -> None:
        self.handrail = root / "handrail.db"
        self.flows = root / "flows.db"

    def client(self) -> Handrail:
        return Handrail.local(self.handrail)

    def persistence(self) -> SQLiteFlowPersistence:
        return SQLiteFlowPersistence(str(self.flows))


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Files]:
    SENT.clear()
    yield Files(tmp_path)
    flow_config.hitl_provider = None


def pause(files: Files, flow_class: type[Flow[Any]], **provider: Any) -> HumanFeedbackPending:
    """Kick the flow off until it pauses; the client and the flow object are then gone."""
    with files.client() as hr:
        flow_config.hitl_provider = HandrailFeedbackProvider(hr, **provider)
        got = flow_class(persistence=files.persistence()).kickoff()
        flow_config.hitl_provider = None
    assert isinstance(got, HumanFeedbackPending)
    return got


def decide(files: Files, task_id: str, decision: Decision) -> None:
    with files.client() as hr:
        hr.as_reviewer("alice").tasks.decide(task_id, decision)


def resume(files: Files, flow_class: type[Flow[Any]], flow_id: str, **kw: Any) -> Any:
    with files.client() as hr:
        return resume_flow(flow_class, flow_id, client=hr, persistence=files.persistence(), **kw)


class TestPauseAndResume:
    def test_the_review_task_carries_the_output_and_the_routes(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        with files.client() as hr:
            task = hr.tasks.get(task_of(paused))
        assert task.status is Status.POSTED
        assert task.title == "Send this refund email?"
        assert task.action is not None
        assert task.action.name == "draft"
        assert task.action.args == {"output": DRAFT}
        assert task.payload["flow_id"] == paused.context.flow_id
        assert task.payload["routes"] == "approve → approved; reject → rejected; modify → approved"
        assert [d.value for d in task.allowed_decisions] == ["approve", "reject", "modify"]
        assert paused.callback_info == {"handrail_task_id": task.id}

    def test_approve_takes_the_approved_route(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        decide(files, task_of(paused), Decision.approve())
        assert resume(files, RefundFlow, paused.context.flow_id) == f"sent: {DRAFT}"
        assert SENT == [DRAFT]

    def test_reject_takes_the_rejected_route_with_the_reason(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        decide(files, task_of(paused), Decision.reject("amount is wrong"))
        assert resume(files, RefundFlow, paused.context.flow_id) == "dropped: amount is wrong"
        assert SENT == []

    def test_modify_sends_the_reviewers_version(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        decide(files, task_of(paused), Decision.modify({"output": "Dear Alice, $60 refund."}))
        got = resume(files, RefundFlow, paused.context.flow_id)
        assert got == "sent: Dear Alice, $60 refund."
        assert SENT == ["Dear Alice, $60 refund."]

    def test_resume_waits_for_the_decision(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        timer = threading.Timer(0.3, decide, (files, task_of(paused), Decision.approve()))
        timer.start()
        try:
            assert resume(files, RefundFlow, paused.context.flow_id, timeout=30).startswith("sent")
        finally:
            timer.join()

    async def test_aresume(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        decide(files, task_of(paused), Decision.reject("no"))
        with files.client() as hr:
            got = await aresume_flow(
                RefundFlow, paused.context.flow_id, client=hr, persistence=files.persistence()
            )
        assert got == "dropped: no"

    def test_a_flow_resumes_once(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        decide(files, task_of(paused), Decision.approve())
        resume(files, RefundFlow, paused.context.flow_id)
        with pytest.raises(ValueError, match="No pending feedback"):
            resume(files, RefundFlow, paused.context.flow_id)
        assert SENT == [DRAFT]


class TestFailsClosed:
    def test_no_decision_yet_leaves_the_flow_paused(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        with pytest.raises(WaitTimeout):
            resume(files, RefundFlow, paused.context.flow_id, timeout=0.1)
        assert SENT == []
        decide(files, task_of(paused), Decision.approve())  # still answerable, still paused
        assert resume(files, RefundFlow, paused.context.flow_id) == f"sent: {DRAFT}"

    def test_a_review_nobody_answered_takes_the_reject_route(self, files: Files) -> None:
        paused = pause(files, RefundFlow)
        with files.client() as hr:
            hr.tasks.cancel(task_of(paused), "the customer withdrew")
        got = resume(files, RefundFlow, paused.context.flow_id)
        assert got.startswith("dropped: The review was cancelled")
        assert SENT == []

    def test_without_a_reject_route_an_unanswered_review_stays_paused(self, files: Files) -> None:
        paused = pause(files, TriageFlow, outcomes={"approve": "escalate"})
        with files.client() as hr:
            hr.tasks.cancel(task_of(paused), "gone")
        with pytest.raises(ReviewNotGiven):
            resume(files, TriageFlow, paused.context.flow_id)
        # still paused: a later resume is refused the same way, not silently routed
        with pytest.raises(ReviewNotGiven):
            resume(files, TriageFlow, paused.context.flow_id)

    def test_outcomes_that_cannot_be_told_apart_fail_before_anything_is_posted(
        self, files: Files
    ) -> None:
        with files.client() as hr:
            flow_config.hitl_provider = HandrailFeedbackProvider(hr)
            with pytest.raises(ValueError, match="cannot tell which of"):
                TriageFlow(persistence=files.persistence()).kickoff()
            assert not hr.tasks.list().items

    def test_outcomes_must_be_among_emit(self, files: Files) -> None:
        with files.client() as hr:
            flow_config.hitl_provider = HandrailFeedbackProvider(hr, outcomes={"approve": "ok"})
            with pytest.raises(ValueError, match="not among emit"):
                TriageFlow(persistence=files.persistence()).kickoff()


class TestRouting:
    def test_explicit_outcomes_and_only_mapped_decisions(self, files: Files) -> None:
        outcomes = {"approve": "escalate", "reject": "close", "respond": "ask_customer"}
        paused = pause(files, TriageFlow, outcomes=outcomes)
        with files.client() as hr:
            allowed = hr.tasks.get(task_of(paused)).allowed_decisions
        assert allowed == (DecisionType.APPROVE, DecisionType.REJECT, DecisionType.RESPOND)
        decide(files, task_of(paused), Decision.respond("ask for the receipt"))
        got = resume(files, TriageFlow, paused.context.flow_id)
        assert got == "asked: ask for the receipt"

    def test_the_decision_routes_not_the_words(self, files: Files) -> None:
        """An LLM reading this approval might well pick "rejected"; the decision rules."""
        paused = pause(files, RefundFlow)
        note = "Approved, though I nearly rejected it: the tone is borderline."
        decide(files, task_of(paused), Decision.approve(note))
        assert resume(files, RefundFlow, paused.context.flow_id) == f"sent: {DRAFT}"

    def test_allowed_decisions_narrow_further(self, files: Files) -> None:
        paused = pause(files, RefundFlow, allowed_decisions=["approve", "reject"])
        with files.client() as hr:
            allowed = hr.tasks.get(task_of(paused)).allowed_decisions
        assert allowed == (DecisionType.APPROVE, DecisionType.REJECT)

    def test_without_emit_the_decision_is_recorded(self, files: Files) -> None:
        paused = pause(files, NoteFlow)
        decide(files, task_of(paused), Decision.reject("too long"))
        got = resume(files, NoteFlow, paused.context.flow_id)
        assert got["feedback"] == "too long"
        assert got["decision"]["type"] == "reject"
        assert got["decision"]["reviewer_id"] == "alice"

    def test_a_flow_not_paused_by_handrail_is_refused(self, files: Files) -> None:
        class Console:
            def request_feedback(self, context: Any, flow: Any) -> str:
                raise HumanFeedbackPending(context)

        flow_config.hitl_provider = Console()  # type: ignore[assignment]
        paused = RefundFlow(persistence=files.persistence()).kickoff()
        assert isinstance(paused, HumanFeedbackPending)
        with pytest.raises(ValueError, match="not waiting for a Handrail review"):
            resume(files, RefundFlow, paused.context.flow_id)
