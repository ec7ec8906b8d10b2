"""``human_review_guardrail``: a person approves, edits or sends back a task's output.

No ``from __future__ import annotations`` here: CrewAI checks a guardrail's return
annotation at runtime and needs the real ``tuple[bool, Any]``, not a string. The
guardrail is a plain function because CrewAI reads its source for its events.
"""

from collections.abc import Callable, Sequence
from typing import Any

from crewai.tasks.task_output import TaskOutput

from handrail import Handrail

from ._output_review import OutputReview
from ._ruling import DEFAULT_ALLOWED

__all__ = ["human_review_guardrail"]


def human_review_guardrail(
    client: Handrail,
    *,
    timeout: float | None = None,
    allowed_decisions: Sequence[str] = DEFAULT_ALLOWED,
    **task_fields: Any,
) -> Callable[[TaskOutput], tuple[bool, Any]]:
    """A ``Task(guardrail=...)`` that asks a Handrail reviewer about the task's output.

    Approve passes the output on; modify passes the reviewer's edited text on (CrewAI
    re-parses it into the task's structured output, if any); reject or respond fails the
    guardrail with the reviewer's words, so the agent tries again with them as feedback
    (up to the task's ``guardrail_max_retries``). No decision from a person within
    ``timeout`` seconds, an expired review or an unreachable server raise
    ``ReviewNotGiven`` and the task fails: output nobody approved is never passed on.
    Other keywords (``title``, ``instructions``, ``risk_tier``, ...) go into each task.

    CrewAI calls guardrails synchronously, also in ``akickoff()``: the wait blocks the
    thread it runs in.
    """
    review = OutputReview(
        client, "the task's output", timeout, tuple(allowed_decisions), dict(task_fields)
    )

    def human_review(output: TaskOutput) -> tuple[bool, Any]:
        verdict = review.review(
            output.raw,
            task=output.description,
            expected_output=output.expected_output,
            agent=output.agent,
        )
        if verdict.kind == "revise":
            return False, verdict.feedback
        return True, output if verdict.output is None else verdict.output

    return human_review
