"""The adapter's one error: a step that needed a person's approval did not get it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from crewai.hooks import HookAborted

from handrail import HandrailError

__all__ = ["ReviewNotGiven"]


class ReviewNotGiven(HandrailError, HookAborted):
    """No person approved a task's output (or decided at all): no answer in time, the
    review expired or was withdrawn, Handrail could not be reached, or the feedback rounds
    ran out. The run stops here instead of going on without approval.

    It is a ``HandrailError`` (``code == "review_not_given"``) and also CrewAI's
    ``HookAborted``, CrewAI's signal for a deliberate stop: an agent does not retry the
    task after it (as it would after an ordinary error, asking the reviewer again).
    """

    code = "review_not_given"

    def __init__(self, step: str, reason: str, task_id: str | None = None) -> None:
        super().__init__(f"{step} was not approved by a person: {reason}")
        self.step = step
        self.why = reason
        self.task_id = task_id

    def context(self) -> dict[str, Any]:
        return {"step": self.step, "reason": self.why, "task_id": self.task_id}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        task_id = fields.get("task_id")
        return cls(
            str(fields.get("step") or "a step"),
            str(fields.get("reason") or detail),
            None if task_id is None else str(task_id),
        )
