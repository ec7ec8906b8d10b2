"""Getting a human's decision on one tool call: by blocking, or by pausing the graph.

:class:`~handrail.tool_review.ToolReview` is the call as the reviewer sees it;
:class:`Gate` turns it into a Handrail review task and returns the decision. The reviewed
tool node, and the LangChain adapter's gated tools and middleware, go through here, so
they ask, wait and fail the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langgraph.errors import GraphBubbleUp, is_invalid_resume

from handrail import Decision, Handrail, ReviewExpired, Status, Task
from handrail.client import OnTimeout, decision_of
from handrail.interrupts import DurableRun, NoDurableRun, execution_key
from handrail.tool_review import ToolReview
from handrail.tool_review import call_key as scoped_call_key

from .interrupts import apause, current_run, graph_task_scope, pause

__all__ = ["Gate", "Mode", "Ruling", "call_key", "must_propagate"]

Mode = Literal["auto", "block", "interrupt"]


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
    """The idempotency key of the task for one tool call, scoped to the LangGraph task it
    runs in (see :func:`handrail.tool_review.call_key`). None for a call without an id."""
    return scoped_call_key(name, tool_call_id, graph_task_scope())


@dataclass(frozen=True)
class Ruling:
    """A decision on a tool call, and for a recorded approve or modify the execution key
    of the call it lets run (:func:`handrail.interrupts.execution_key`: the task id and
    the decision, the same however often the call runs for that decision)."""

    decision: Decision
    execution_key: str | None = None

    @classmethod
    def of(cls, task: Task, decision: Decision) -> Ruling:
        return cls(decision, execution_key(task) if decision.is_approval else None)


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
        return self.rule(review).decision

    async def adecide(self, review: ToolReview) -> Decision:
        return (await self.arule(review)).decision

    def rule(self, review: ToolReview) -> Ruling:
        """The decision on ``review``, with the execution key of the call it lets run."""
        run = self.durable_run()
        if run is None:
            blocking = self._blocking(review)
            decision = self.client.review(review.action(), **blocking)
            if not decision.is_approval or blocking["idempotency_key"] is None:
                return Ruling(decision)
            # the approved task again, by its key: creating it again finds it
            return self._keyed(decision, self.client.tasks.create(self._again(review, blocking)))
        return self.ruling(pause(self.client, **self._pausing(review, run)))

    async def arule(self, review: ToolReview) -> Ruling:
        """:meth:`rule`, awaiting."""
        run = self.durable_run()
        if run is None:
            blocking = self._blocking(review)
            decision = await self.client.areview(review.action(), **blocking)
            if not decision.is_approval or blocking["idempotency_key"] is None:
                return Ruling(decision)
            again = await self.client.tasks.acreate(self._again(review, blocking))
            return self._keyed(decision, again)
        return self.ruling(await apause(self.client, **self._pausing(review, run)))

    def _blocking(self, review: ToolReview) -> dict[str, Any]:
        """``review``/``areview``'s arguments besides the action."""
        return {
            "allowed": review.allowed,
            "timeout": self.timeout,
            "on_timeout": self.on_timeout,
            "idempotency_key": call_key(review.name, review.tool_call_id),
            **review.fields(self.timeout),
        }

    @staticmethod
    def _again(review: ToolReview, blocking: dict[str, Any]) -> dict[str, Any]:
        """The task ``Handrail.review`` created for ``blocking``, as it created it."""
        asked = ("allowed", "timeout", "on_timeout")
        fields = {k: v for k, v in blocking.items() if k not in asked}
        return {
            **fields,
            "kind": "review",
            "action": review.action(),
            "agent_reasoning": None,
            "confidence": None,
            "allowed_decisions": tuple(review.allowed),
        }

    @staticmethod
    def _keyed(decision: Decision, task: Task) -> Ruling:
        """``decision`` with ``task``'s execution key, if ``task`` holds that decision."""
        held = task.decision is not None and task.decision.type is decision.type
        return Ruling(decision, execution_key(task) if held else None)

    def _pausing(self, review: ToolReview, run: DurableRun) -> dict[str, Any]:
        """``pause``/``apause``'s arguments besides the client."""
        return {
            "spec": review.spec(self.timeout),
            "identity": review.identity,
            "run": run,
            "description": review.description,
            "tool_call_id": review.tool_call_id,
        }

    def outcome(self, task: Task) -> Decision:
        """The decision a finished task stands for (``on_timeout="raise"``: an expired
        task raises ``ReviewExpired``)."""
        return self.ruling(task).decision

    def ruling(self, task: Task) -> Ruling:
        """:meth:`outcome`, with the execution key."""
        if task.status is Status.EXPIRED and self.on_timeout == "raise":
            raise ReviewExpired(task.id, float(task.sla_seconds))
        return Ruling.of(task, decision_of(task))
