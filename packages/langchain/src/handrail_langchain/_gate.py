"""Getting a human's decision on one tool call: by blocking, or by pausing the graph.

:class:`ToolReview` is the call as the reviewer sees it; :class:`Gate` turns it into a
Handrail review task and returns the decision. Both the tool wrapper and the middleware
go through here, so they ask, wait and fail the same way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from langgraph.errors import GraphBubbleUp, is_invalid_resume

from handrail import Decision, DecisionType, Handrail, Status, Task, WaitTimeout
from handrail.client import OnTimeout, decision_of

from .interrupts import (
    DurableRun,
    NoDurableRun,
    apause,
    current_run,
    graph_task_scope,
    pause,
)

__all__ = [
    "Gate",
    "Mode",
    "ToolReview",
    "allowed_decisions",
    "call_key",
    "must_propagate",
    "task_fields",
]

Mode = Literal["auto", "block", "interrupt"]

_NAMES: dict[str, DecisionType] = {
    "approve": DecisionType.APPROVE,
    "reject": DecisionType.REJECT,
    "modify": DecisionType.MODIFY,
    "edit": DecisionType.MODIFY,  # LangChain's name for it
    "respond": DecisionType.RESPOND,
}
MAX_KEY = 256


def allowed_decisions(names: Iterable[str | DecisionType]) -> tuple[DecisionType, ...]:
    """Decision names (Handrail's, or LangChain's ``edit`` for ``modify``) as Handrail's
    types, in order, without repeats. Unknown names and an empty list are refused."""
    found: list[DecisionType] = []
    for name in names:
        kind = _NAMES.get(str(getattr(name, "value", name)))
        if kind is None:
            known = ", ".join(sorted(_NAMES))
            raise ValueError(f"unknown decision {name!r}: use {known}")
        if kind not in found:
            found.append(kind)
    if not found:
        raise ValueError("allowed_decisions must name at least one decision")
    return tuple(found)


def must_propagate(exc: BaseException) -> bool:
    """What is never turned into a tool result: LangGraph's control flow (an interrupt, a
    command for the parent graph), a refused resume value, a setup error (pausing without
    a checkpointer), and anything that is not an ``Exception`` (cancellation)."""
    return (
        isinstance(exc, GraphBubbleUp | NoDurableRun)
        or is_invalid_resume(exc)
        or not isinstance(exc, Exception)
    )


def call_key(name: str, tool_call_id: str | None) -> str | None:
    """The idempotency key of the task for one tool call: ``langchain:<tool>:<call id>``,
    and inside a LangGraph task also that task's scope, because some models number their
    calls afresh in every run ("call_0" each time): a repeated id must not find, and
    reuse, the decision on another run's call. None for a call without an id."""
    if not tool_call_id:
        return None
    scope = graph_task_scope()
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
        """Which pause this is within a graph task (see ``interrupts``)."""
        return f"tool:{self.tool_call_id or self.name}"

    @property
    def idempotency_key(self) -> str | None:
        """For a call with an id, when blocking: the same call asks once."""
        return call_key(self.name, self.tool_call_id)

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


@dataclass(frozen=True)
class Gate:
    """Asks ``client`` for a decision on a :class:`ToolReview`.

    ``mode``: ``"block"`` waits in this thread (or task); ``"interrupt"`` pauses the
    LangGraph run with ``interrupt()`` (it must have a checkpointer); ``"auto"`` pauses
    when it can and blocks otherwise. A timeout gives a reject (``on_timeout="reject"``)
    or raises ``WaitTimeout`` (``"raise"``); other errors raise. No path gives an
    approval a reviewer did not record."""

    client: Handrail
    timeout: float | None = None
    on_timeout: OnTimeout = "reject"
    mode: Mode = "auto"

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "block", "interrupt"):
            raise ValueError(f"mode must be 'auto', 'block' or 'interrupt', not {self.mode!r}")
        if self.on_timeout not in ("reject", "raise"):
            raise ValueError(f"on_timeout must be 'reject' or 'raise', not {self.on_timeout!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError("timeout must be a positive number of seconds, or None")

    def durable_run(self) -> DurableRun | None:
        """The run to pause, or None to block."""
        if self.mode == "block":
            return None
        run = current_run()
        if run is None and self.mode == "interrupt":
            raise NoDurableRun(
                "mode='interrupt' pauses the graph, so it needs a LangGraph run with a "
                "checkpointer (create_agent(..., checkpointer=...)); use mode='block' "
                "to wait without one"
            )
        return run

    def decide(self, review: ToolReview) -> Decision:
        run = self.durable_run()
        if run is None:
            return self.client.review(review.action(), **self._blocking(review))
        return self._outcome(pause(self.client, **self._pausing(review, run)))

    async def adecide(self, review: ToolReview) -> Decision:
        run = self.durable_run()
        if run is None:
            return await self.client.areview(review.action(), **self._blocking(review))
        return self._outcome(await apause(self.client, **self._pausing(review, run)))

    def _blocking(self, review: ToolReview) -> dict[str, Any]:
        """``review``/``areview``'s arguments besides the action."""
        return {
            "allowed": review.allowed,
            "timeout": self.timeout,
            "on_timeout": self.on_timeout,
            "idempotency_key": review.idempotency_key,
            **review.fields(self.timeout),
        }

    def _pausing(self, review: ToolReview, run: DurableRun) -> dict[str, Any]:
        """``pause``/``apause``'s arguments besides the client."""
        return {
            "spec": review.spec(self.timeout),
            "identity": review.identity,
            "run": run,
            "description": review.description,
            "tool_call_id": review.tool_call_id,
        }

    def _outcome(self, task: Task) -> Decision:
        if task.status is Status.EXPIRED and self.on_timeout == "raise":
            raise WaitTimeout(task.id, float(task.sla_seconds), task.status.value)
        return decision_of(task)
