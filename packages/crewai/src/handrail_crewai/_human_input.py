"""``HandrailHumanInput``: ``Task(human_input=True)`` asks Handrail reviewers, not the console.

CrewAI calls the human-input provider after an agent's final answer. This one posts the
answer as a review task and waits: approve accepts it, modify accepts the reviewer's
edited text (no further model call), reject or respond sends the reviewer's words back
to the agent as feedback and asks again about the revised answer. No decision from a
person (timeout, expiry, an unreachable server) stops the run with ``ReviewNotGiven``:
an answer nobody approved is never passed on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from crewai.agents.parser import AgentFinish
from crewai.core.providers.human_input import (
    AsyncExecutorContext,
    ExecutorContext,
    SyncHumanInputProvider,
    reset_provider,
    set_provider,
)

from handrail import Handrail

from ._errors import ReviewNotGiven
from ._output_review import OutputReview, Verdict
from ._ruling import DEFAULT_ALLOWED

__all__ = ["HandrailHumanInput"]


class HandrailHumanInput(SyncHumanInputProvider):
    """A CrewAI human-input provider whose feedback comes from Handrail reviewers.

    Use it for a run with ``with HandrailHumanInput(hr).installed(): crew.kickoff()``
    (CrewAI keeps the provider in a context variable). ``timeout`` bounds each wait;
    ``max_rounds`` bounds how many times one answer goes back and forth before the run
    stops with ``ReviewNotGiven``. Other keywords go into each review task. Training runs
    (``crew.train()``) keep CrewAI's console prompt.
    """

    def __init__(
        self,
        client: Handrail,
        *,
        timeout: float | None = None,
        max_rounds: int = 10,
        allowed_decisions: Sequence[str] = DEFAULT_ALLOWED,
        **task_fields: Any,
    ) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.max_rounds = max_rounds
        self._review = OutputReview(
            client, "the task's final answer", timeout, tuple(allowed_decisions), task_fields
        )

    @contextmanager
    def installed(self) -> Iterator[HandrailHumanInput]:
        """Make this the provider in the current context for the duration of the block."""
        token = set_provider(self)
        try:
            yield self
        finally:
            reset_provider(token)

    def handle_feedback(
        self, formatted_answer: AgentFinish, context: ExecutorContext
    ) -> AgentFinish:
        if context._is_training_mode():
            return super().handle_feedback(formatted_answer, context)
        answer = formatted_answer
        for round_no in range(1, self.max_rounds + 1):
            verdict = self._review.review(answer.output, **_about(context, round_no))
            if verdict.kind == "accept":
                return _accepted(answer, verdict, context)
            if round_no < self.max_rounds:
                context.messages.append(context._format_feedback_message(verdict.feedback))
                answer = context._invoke_loop()
        raise _out_of_rounds(self.max_rounds)

    async def handle_feedback_async(
        self, formatted_answer: AgentFinish, context: AsyncExecutorContext
    ) -> AgentFinish:
        if context._is_training_mode():
            return await super().handle_feedback_async(formatted_answer, context)
        answer = formatted_answer
        for round_no in range(1, self.max_rounds + 1):
            verdict = await self._review.areview(answer.output, **_about(context, round_no))
            if verdict.kind == "accept":
                return _accepted(answer, verdict, context)
            if round_no < self.max_rounds:
                context.messages.append(context._format_feedback_message(verdict.feedback))
                answer = await context._ainvoke_loop()
        raise _out_of_rounds(self.max_rounds)


def _about(context: ExecutorContext, round_no: int) -> dict[str, Any]:
    """What the reviewer is shown besides the answer."""
    task = context.task
    return {
        "task": getattr(task, "description", None),
        "expected_output": getattr(task, "expected_output", None),
        "agent": getattr(context.agent, "role", None),
        "round": round_no,
    }


def _accepted(answer: AgentFinish, verdict: Verdict, context: ExecutorContext) -> AgentFinish:
    context.ask_for_human_input = False
    if verdict.output is None:
        return answer
    return replace(answer, output=verdict.output, text=str(verdict.output))


def _out_of_rounds(rounds: int) -> ReviewNotGiven:
    return ReviewNotGiven(
        "the task's final answer", f"still not approved after {rounds} rounds of feedback"
    )
