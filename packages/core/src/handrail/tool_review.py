"""A tool call put to a human reviewer, and what the model reads back: framework-free.

Every agent framework Handrail gates tools in shares these: :class:`ToolReview` is one
call as the reviewer sees it (and the task it becomes); :func:`call_key` its idempotency
key; the texts below are what the model reads when a human stopped, answered or changed
the call. Every message for a call that did not run says so and tells the model not to
issue the same call again (models otherwise retry a rejected call until they run out of
turns). Building the framework's message objects is the adapter's part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import HandrailError
from .models import Decision, DecisionType

__all__ = [
    "DO_NOT_RETRY",
    "EDIT_NOTICE",
    "MAX_KEY",
    "ToolReview",
    "call_key",
    "edit_notice",
    "failed",
    "invalid_edit",
    "log_failure",
    "not_run",
    "refusal",
    "task_fields",
]

DO_NOT_RETRY = (
    "Do not retry this call, or the same call with new ids: it would be stopped again. "
    "Continue without it, choose a different approach, or ask the user."
)

EDIT_NOTICE = (
    "Note: a human reviewer changed this tool call before it ran. The call in your message "
    "is the one you proposed, not the one that ran. This was intentional and authorized; "
    "do not re-issue your original call."
)

MAX_KEY = 256


def call_key(name: str, tool_call_id: str | None, scope: str | None = None) -> str | None:
    """The idempotency key of the task for one tool call: ``langchain:<tool>:<call id>``,
    and inside a graph task also that task's ``scope``, because some models number their
    calls afresh in every run ("call_0" each time): a repeated id must not find, and
    reuse, the decision on another run's call. None for a call without an id."""
    if not tool_call_id:
        return None
    key = f"langchain:{name}:{tool_call_id}" + (f":{scope}" if scope else "")
    if len(key) > MAX_KEY:
        key = "langchain:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def task_fields(timeout: float | None) -> dict[str, Any]:
    """The deadline for a task when the caller waits at most ``timeout`` seconds: no one
    should pick up a task the agent has given up on."""
    return {} if timeout is None else {"sla_seconds": max(1, math.ceil(timeout))}


@dataclass(frozen=True)
class ToolReview:
    """One tool call, as the reviewer sees it."""

    name: str
    args: dict[str, Any]
    allowed: tuple[DecisionType, ...]
    args_schema: dict[str, Any] | None = None
    tool_call_id: str | None = None
    description: str | None = None
    tool_description: str | None = None
    batch_id: str | None = None
    """The model turn the call came in: its parallel calls share it, and reviewers see
    them side by side."""

    @property
    def identity(self) -> str:
        """Which pause this is within a graph task (see ``handrail.interrupts``)."""
        return f"tool:{self.tool_call_id or self.name}"

    def action(self) -> dict[str, Any]:
        action: dict[str, Any] = {"name": self.name, "args": self.args}
        if self.args_schema is not None:
            action["args_schema"] = self.args_schema
        return action

    def fields(self, timeout: float | None) -> dict[str, Any]:
        """The task's fields besides its action and allowed decisions. The same call
        gives the same fields (a paused graph creates it again on resume)."""
        fields: dict[str, Any] = {
            "metadata": {"source": "handrail-langchain", "tool_call_id": self.tool_call_id},
            **task_fields(timeout),
        }
        if self.description:
            fields["instructions"] = self.description
        if self.tool_description:
            fields["payload"] = {"tool_description": self.tool_description}
        if self.batch_id:
            fields["batch_id"] = self.batch_id
        return fields

    def spec(self, timeout: float | None) -> dict[str, Any]:
        return {
            "kind": "review",
            "action": self.action(),
            "allowed_decisions": [d.value for d in self.allowed],
            **self.fields(timeout),
        }


# ---------------------------------------------------------------- what the model reads


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?" else text + "."


def not_run(name: str, decision: Decision) -> str:
    """For a reject: by a reviewer (with their reason), or by no one (a timeout, an
    expired or cancelled review)."""
    reason = _sentence(decision.message)
    if decision.reviewer_id is None:  # nobody decided: Handrail said no on their behalf
        reason = reason or "It was not approved."
        return f"The call to `{name}` was not run. {reason[0].upper()}{reason[1:]} {DO_NOT_RETRY}"
    because = f" Reason: {reason}" if reason else ""
    return (
        f"A human reviewer rejected the call to `{name}`, so it was not run.{because} "
        f"{DO_NOT_RETRY}"
    )


def failed(name: str, error: BaseException) -> str:
    """For an error while asking (server down, bad configuration): the call did not run."""
    detail = str(error).strip().rstrip(".") or type(error).__name__
    return (
        f"The call to `{name}` was not run: no human decision could be obtained "
        f"({detail}). {DO_NOT_RETRY}"
    )


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """One log line for a call that could not get its decision (or answer). Handrail's own
    errors (an unreachable server, a refused request) say all there is in their message,
    so they come without a traceback; anything else (a bug, in a description function
    say) keeps its traceback."""
    trace = None if isinstance(exc, HandrailError) else exc
    log.warning("%s (%s: %s); the call was not run", what, type(exc).__name__, exc, exc_info=trace)


def invalid_edit(name: str, problem: str) -> str:
    """For a modify whose arguments the tool refuses: the call did not run."""
    return (
        f"The call to `{name}` was not run: a human reviewer edited its arguments, but the "
        f"tool does not accept them ({problem}). {DO_NOT_RETRY}"
    )


def edit_notice(name: str, args: dict[str, Any], note: str | None, prefix: str) -> str:
    """Prepended to the result of a call a reviewer changed: what ran instead."""
    text = f"{prefix} Executed instead: {name} with arguments {json.dumps(args, default=str)}."
    if note and note.strip():
        text += f" The reviewer's note: {_sentence(note)}"
    return text


def refusal(name: str, decision: Decision) -> tuple[str, Literal["success", "error"]]:
    """The result of a call that did not run, and its status: the reviewer's answer for a
    respond (a success: the human answered for the tool), a refusal otherwise."""
    if decision.type is DecisionType.RESPOND:
        return decision.message or "", "success"
    return not_run(name, decision), "error"
