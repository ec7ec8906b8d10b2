"""Handrail for CrewAI: people approve tools, answer agents, review outputs and resume flows.

>>> from handrail_crewai import require_approval  # doctest: +SKIP
>>> send = require_approval(send_email, client=hr)  # doctest: +SKIP

- :func:`require_approval` gates one tool (``BaseTool`` or ``@tool``; ``run`` and ``arun``);
- :class:`AskHumanTool` lets an agent ask a person a question;
- :func:`approval_hook` gates tools crew-wide through CrewAI's ``before_tool_call`` hooks;
- :class:`HandrailHumanInput` answers ``Task(human_input=True)`` from reviewers;
- :func:`human_review_guardrail` is a ``Task(guardrail=...)`` a person decides;
- :class:`HandrailFeedbackProvider` pauses a Flow at ``@human_feedback`` durably, and
  :func:`resume_flow` / :func:`aresume_flow` resume it when the decision lands.

``import crewai`` takes seconds, so this package imports it only when one of these names
is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._ask import AskHumanTool
    from ._errors import ReviewNotGiven
    from ._flows import (
        DecidedOutcome,
        HandrailFeedbackProvider,
        aresume_flow,
        execution_key,
        resume_flow,
        review_task_id,
    )
    from ._guardrail import human_review_guardrail
    from ._hooks import ApprovalHook, approval_hook
    from ._human_input import HandrailHumanInput
    from ._tools import GatedTool, ReviewerAnswer, require_approval

__all__ = [
    "ApprovalHook",
    "AskHumanTool",
    "DecidedOutcome",
    "GatedTool",
    "HandrailFeedbackProvider",
    "HandrailHumanInput",
    "ReviewNotGiven",
    "ReviewerAnswer",
    "approval_hook",
    "aresume_flow",
    "execution_key",
    "human_review_guardrail",
    "require_approval",
    "resume_flow",
    "review_task_id",
]

_HOME: dict[str, str] = {
    "ApprovalHook": "._hooks",
    "AskHumanTool": "._ask",
    "DecidedOutcome": "._flows",
    "GatedTool": "._tools",
    "HandrailFeedbackProvider": "._flows",
    "HandrailHumanInput": "._human_input",
    "ReviewNotGiven": "._errors",
    "ReviewerAnswer": "._tools",
    "approval_hook": "._hooks",
    "aresume_flow": "._flows",
    "execution_key": "._flows",
    "human_review_guardrail": "._guardrail",
    "require_approval": "._tools",
    "resume_flow": "._flows",
    "review_task_id": "._flows",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
