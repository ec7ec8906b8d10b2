"""The pieces under the adapters: rulings, output reviews, the public surface."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

import handrail_crewai
from handrail import Decision, Handrail, HandrailError
from handrail_crewai import ReviewNotGiven
from handrail_crewai._flows import outcome_map
from handrail_crewai._output_review import OutputReview
from handrail_crewai._ruling import Code, rule
from tests.crewai._support import EmailArgs, reviewer

PROPOSED = {"to": "a@example.com", "body": "hello"}


def by(decision: Decision, who: str | None = "alice") -> Decision:
    return decision.model_copy(update={"reviewer_id": who, "decided_at": datetime.now(UTC)})


class TestRule:
    def test_only_a_persons_approve_or_modify_runs(self) -> None:
        runs = {
            "approve": rule("send", by(Decision.approve()), PROPOSED, EmailArgs),
            "modify": rule(
                "send", by(Decision.modify({"to": "b@example.com"})), PROPOSED, EmailArgs
            ),
            "reject": rule("send", by(Decision.reject("no")), PROPOSED, EmailArgs),
            "respond": rule("send", by(Decision.respond("hi")), PROPOSED, EmailArgs),
        }
        assert {k: r.runs for k, r in runs.items()} == {
            "approve": True,
            "modify": True,
            "reject": False,
            "respond": False,
        }
        assert runs["modify"].kwargs == {"to": "b@example.com", "body": "hello"}
        assert runs["respond"].answered

    @pytest.mark.parametrize(
        "decision",
        [Decision.approve(), Decision.modify({"to": "b@example.com"})],
        ids=["approve", "modify"],
    )
    def test_an_approval_nobody_gave_does_not_run(self, decision: Decision) -> None:
        ruling = rule("send", by(decision, who=None), PROPOSED, EmailArgs)
        assert not ruling.runs and ruling.code is Code.NO_DECISION

    def test_without_a_schema_edits_pass_as_given(self) -> None:
        ruling = rule("send", by(Decision.modify({"x": 1})), {"x": 0}, None)
        assert ruling.runs and ruling.kwargs == {"x": 1} and ruling.args == {"x": 1}


class Reply(BaseModel):
    subject: str
    body: str


class TestOutputReview:
    def review(self, hr: Handrail) -> OutputReview:
        return OutputReview(hr, "the reply", 5, ("approve", "reject", "modify"), {})

    def test_a_structured_output_is_reviewed_and_edited_as_json(self, hr: Handrail) -> None:
        edit = Decision.modify({"output": {"subject": "Refund", "body": "sent"}})
        with reviewer(hr, edit) as alice:
            verdict = self.review(hr).review(Reply(subject="Hi", body="draft"))
        assert verdict.kind == "accept" and verdict.output == Reply(subject="Refund", body="sent")
        action = alice.tasks[0].action
        assert action is not None and action.args == {"output": {"subject": "Hi", "body": "draft"}}
        assert action.args_schema is not None
        assert action.args_schema["properties"]["output"]["required"] == ["subject", "body"]

    def test_a_structured_edit_handrail_refuses_never_lands(self, hr: Handrail) -> None:
        refused: list[Exception] = []

        def bad_then_approve(task: object) -> Decision:
            try:
                hr.as_reviewer("alice").tasks.decide(
                    task.id,  # type: ignore[attr-defined]
                    Decision.modify({"output": {"subject": "only"}}),
                )
            except Exception as exc:
                refused.append(exc)
            return Decision.approve()

        with reviewer(hr, bad_then_approve):
            verdict = self.review(hr).review(Reply(subject="Hi", body="draft"))
        assert refused and verdict.kind == "accept" and verdict.output is None

    def test_reject_is_feedback(self, hr: Handrail) -> None:
        with reviewer(hr, Decision.reject("shorter")):
            assert self.review(hr).review("draft").feedback == "shorter"

    def test_no_person_no_verdict(self, hr: Handrail) -> None:
        review = OutputReview(hr, "the reply", 0.1, ("approve",), {})
        with pytest.raises(ReviewNotGiven) as got:
            review.review("draft")
        assert got.value.to_dict()["code"] == "review_not_given"
        assert "the reply was not approved by a person" in str(got.value)


class TestOutcomes:
    def test_named_outcomes_are_found(self) -> None:
        assert outcome_map(["Approved", "Rejected"], None) == {
            "approve": "Approved",
            "reject": "Rejected",
            "modify": "Approved",
        }

    def test_unknown_decisions_are_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown decisions"):
            outcome_map(["a"], {"accept": "a"})


def test_all_is_sorted_and_every_name_loads() -> None:
    assert handrail_crewai.__all__ == sorted(handrail_crewai.__all__)
    for name in handrail_crewai.__all__:
        assert getattr(handrail_crewai, name) is not None
    with pytest.raises(AttributeError):
        handrail_crewai.nothing  # noqa: B018


def test_importing_the_package_does_not_import_crewai() -> None:
    code = textwrap.dedent(
        """
        import sys
        import handrail_crewai
        assert "crewai" not in sys.modules, "crewai was imported"
        assert "require_approval" in dir(handrail_crewai)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_review_not_given_crosses_the_wire_and_back() -> None:
    """The adapter's error is a problem like any Handrail error, rebuilt with its context."""
    error = ReviewNotGiven("the payout step", "no answer in 60 s", "tsk_1")
    body = error.to_problem()
    assert body["code"] == "review_not_given"
    back = HandrailError.from_problem(body, body["status"])
    assert type(back) is ReviewNotGiven
    assert (back.step, back.why, back.task_id) == ("the payout step", "no answer in 60 s", "tsk_1")
    assert str(back) == str(error)
