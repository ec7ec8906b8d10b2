"""Verification: what stands between a submitted answer and a verified one.

The engine calls a :class:`Verifier` once a task has every answer it wants. This module
holds the protocol and :class:`PassThroughVerifier`, which checks each answer against the
task's schema and wants the answers to agree; the full pipeline (rules, anomaly, gold
tasks, consensus, spot checks) plugs in behind the same protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ._jsonschema import validation_issues
from .models import Kind, StageResult, Task, Verification

if TYPE_CHECKING:
    from .store import Transaction

__all__ = ["PassThroughVerifier", "Verifier"]


class Verifier(Protocol):
    def plan(self, task: Task) -> Task:
        """Set what a new task needs before it is posted (how many answers, the cap)."""
        ...

    async def verify(self, tx: Transaction, task: Task) -> Verification:
        """Judge the submitted answers of ``task`` (status ``submitted``).

        ``Verification.outcome`` moves the task: ``verified`` (with ``output`` as the
        task's output), ``failed``, ``manual_review`` or ``repost``.
        """
        ...


class PassThroughVerifier:
    """Schema check and agreement: verified when every answer is valid and all agree.

    Disagreeing answers (possible only with redundancy > 1) go to manual review; an answer
    that fails the schema fails the task. Scores are 100, 50 and 0.
    """

    def plan(self, task: Task) -> Task:
        return task

    async def verify(self, tx: Transaction, task: Task) -> Verification:
        problems: list[str] = []
        if task.kind is Kind.JUDGMENT:  # decisions were validated as they came in
            for i, answer in enumerate(task.answers()):
                issues = validation_issues(answer.output, task.output_schema, f"$.answers[{i}]")
                problems += [str(issue) for issue in issues]
        if problems:
            stage = StageResult(name="schema", verdict="fail", score=0, reasons=tuple(problems))
            return Verification(outcome="failed", score=0, stages=(stage,), reasons=stage.reasons)
        schema = StageResult(name="schema", verdict="pass", score=100)
        agreed = task.agreed_output()
        if agreed is None:
            why = (f"{len(task.answers())} answers disagree",)
            agree = StageResult(name="agreement", verdict="uncertain", score=50, reasons=why)
            return Verification(
                outcome="manual_review", score=50, stages=(schema, agree), reasons=why
            )
        agree = StageResult(name="agreement", verdict="pass", score=100)
        return Verification(outcome="verified", score=100, stages=(schema, agree), output=agreed)
