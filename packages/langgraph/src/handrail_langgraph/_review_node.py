"""``review_node`` and ``blocking_review_node``: a graph node that asks a human to review
the action in the state, then routes the graph by the recorded decision.

Both build the same review task from the state and route the same way; they differ in how
they wait. ``review_node`` pauses the graph with ``interrupt()`` (the graph needs a
checkpointer; a resumer carries on once the decision lands). ``blocking_review_node``
blocks the node until the decision (no checkpointer needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END
from langgraph.types import Command

from handrail import Action, Decision, DecisionType, Handrail, InvalidTransition, Task, WaitTimeout
from handrail.client import decision_of
from handrail.interrupts import DurableRun, NoDurableRun, execution_key
from handrail.interrupts import allowed_decisions as allowed_decisions_of

from .interrupts import apause, current_run, pause

__all__ = ["ReviewOutcome", "blocking_review_node", "review_node"]

ActionSource = str | Callable[[Any], Any]
"""Where the action is: a state key, or a function of the state."""
TaskFields = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]
"""More of the task (``title``, ``instructions``, ``payload``, ``risk_tier``,
``agent_reasoning``, ``metadata``...): fixed, or a function of the state."""


class ReviewOutcome(TypedDict):
    """What ``decision_key`` receives: the decision as plain JSON, with its task.

    ``execution_key`` (:func:`handrail.interrupts.execution_key`: the task id and the
    decision) is the same on every run of the nodes after the review: make the side
    effect idempotent on it (LangGraph runs a node again if its process dies inside it)."""

    task_id: str
    execution_key: str
    status: str
    type: Literal["approve", "reject", "modify", "respond"]
    message: str | None
    args: dict[str, Any] | None
    reviewer_id: str | None


def _action(value: Any) -> dict[str, Any]:
    """The state's action as plain JSON (``name``, ``args``, and ``args_schema`` if any)."""
    if isinstance(value, Action):
        action = value
    elif isinstance(value, Mapping):
        action = Action.model_validate(dict(value))
    else:
        raise TypeError(
            "the action to review must be a handrail.Action or a mapping with a 'name' "
            f"(and 'args'), not {type(value).__name__}"
        )
    return action.model_dump(mode="json", exclude_none=True)


def _node_name(config: RunnableConfig | None) -> str:
    metadata = (config or {}).get("metadata") or {}
    return str(metadata.get("langgraph_node", "review"))


@dataclass(frozen=True)
class _Review:
    """The task a state asks for, and the route a decision takes."""

    client: Handrail
    action: ActionSource
    allowed: tuple[DecisionType, ...]
    on_approve: str
    on_modify: str
    on_reject: str
    on_respond: str
    timeout: float | None
    decision_key: str | None
    fields: TaskFields | None

    def action_of(self, state: Any) -> dict[str, Any]:
        if callable(self.action):
            return _action(self.action(state))
        value = state.get(self.action) if isinstance(state, Mapping) else None
        if value is None:
            value = getattr(state, self.action, None)
        if value is None:
            raise ValueError(f"the state has no action to review under {self.action!r}")
        return _action(value)

    def spec(self, state: Any, node: str) -> dict[str, Any]:
        """The review task for ``state``: the same state gives the same spec (a paused
        node creates it again when it runs again)."""
        extra = self.fields(state) if callable(self.fields) else dict(self.fields or {})
        metadata = {**dict(extra.get("metadata") or {}), "source": "handrail-langgraph"}
        metadata["node"] = node
        spec: dict[str, Any] = {
            **extra,
            "kind": "review",
            "action": self.action_of(state),
            "allowed_decisions": [d.value for d in self.allowed],
            "metadata": metadata,
        }
        if self.timeout is not None:
            spec["sla_seconds"] = max(1, math.ceil(self.timeout))
        return spec

    def route(self, state: Any, task: Task, decision: Decision) -> Command[Any]:
        """Where the decision sends the graph, and what it changes in the state."""
        update: dict[str, Any] = {}
        kind = decision.type
        if kind is DecisionType.APPROVE:
            goto = self.on_approve
        elif kind is DecisionType.MODIFY and decision.args is not None:
            goto = self.on_modify
            if isinstance(self.action, str):  # the edited action goes where the action was
                update[self.action] = {**self.action_of(state), "args": dict(decision.args)}
        elif kind is DecisionType.RESPOND:
            goto = self.on_respond
        else:  # reject; and expired, cancelled, failed (decision_of made those rejects)
            goto = self.on_reject
        if self.decision_key is not None:
            update[self.decision_key] = _outcome(task, decision)
        return Command(goto=goto, update=update or None)


def _outcome(task: Task, decision: Decision) -> ReviewOutcome:
    return ReviewOutcome(
        task_id=task.id,
        execution_key=execution_key(task),
        status=task.status.value,
        type=decision.type.value,
        message=decision.message,
        args=dict(decision.args) if decision.args is not None else None,
        reviewer_id=decision.reviewer_id,
    )


def _review(
    client: Handrail,
    action: ActionSource,
    allowed_decisions: Sequence[str | DecisionType],
    on_approve: str,
    on_modify: str | None,
    on_reject: str,
    on_respond: str | None,
    timeout: float | None,
    decision_key: str | None,
    task: TaskFields | None,
) -> _Review:
    if timeout is not None and not timeout > 0:
        raise ValueError("timeout must be a positive number of seconds, or None")
    if not isinstance(action, str) and not callable(action):
        raise TypeError("action must be a state key or a function of the state")
    return _Review(
        client=client,
        action=action,
        allowed=allowed_decisions_of(allowed_decisions),
        on_approve=on_approve,
        on_modify=on_modify or on_approve,
        on_reject=on_reject,
        on_respond=on_respond or on_reject,
        timeout=timeout,
        decision_key=decision_key,
        fields=task,
    )


def review_node(
    client: Handrail,
    *,
    action: ActionSource,
    on_approve: str,
    on_modify: str | None = None,
    on_reject: str = END,
    on_respond: str | None = None,
    allowed_decisions: Sequence[str | DecisionType] = ("approve", "reject", "modify"),
    timeout: float | None = None,
    decision_key: str | None = None,
    task: TaskFields | None = None,
) -> RunnableLambda[Any, Command[Any]]:
    """A node that pauses the graph until a human reviews the action in the state.

    ``action`` is a state key holding the action (a ``handrail.Action`` or a mapping with
    ``name``, ``args`` and optionally ``args_schema``), or a function of the state that
    returns one. The node creates a review task for it (``task`` adds fields: a title,
    instructions, a payload, a risk tier...) and pauses the graph with ``interrupt()``;
    the interrupt's value is readable by Handrail clients, LangChain HITL clients and
    Agent Inbox, and its ``response_schema`` refuses a malformed resume. The task's
    idempotency key comes from the thread, the checkpoint namespace, the node and the
    pause's position, so the node re-run on resume finds the same task.

    Resumed (by a :class:`~handrail_langgraph.HandrailResumer`, or any client), the node
    reads the decision Handrail recorded (never the resume value) and returns a
    ``Command``: approve goes to ``on_approve``; modify to ``on_modify`` (default
    ``on_approve``), writing the edited action back under the ``action`` key when it is
    one; reject to ``on_reject`` (default ``END``); respond to ``on_respond`` (default
    ``on_reject``). A review that expires (``timeout`` seconds, else the task's SLA), is
    cancelled or fails takes the reject route: it fails closed. With ``decision_key``, the
    decision is also written to the state as a :class:`ReviewOutcome`.

    Compile the graph with a checkpointer; without one the node raises
    ``NoDurableRun`` (use :func:`blocking_review_node`).
    """
    review = _review(
        client,
        action,
        allowed_decisions,
        on_approve,
        on_modify,
        on_reject,
        on_respond,
        timeout,
        decision_key,
        task,
    )

    def run(state: Any, config: RunnableConfig) -> Command[Any]:
        durable = _durable()
        node = _node_name(config)
        done = pause(client, review.spec(state, node), identity=f"node:{node}", run=durable)
        return review.route(state, done, decision_of(done))

    async def arun(state: Any, config: RunnableConfig) -> Command[Any]:
        durable = _durable()
        node = _node_name(config)
        done = await apause(client, review.spec(state, node), identity=f"node:{node}", run=durable)
        return review.route(state, done, decision_of(done))

    return RunnableLambda(run, afunc=arun, name="review_node")


def _durable() -> DurableRun:
    run = current_run()
    if run is None:
        raise NoDurableRun(
            "review_node pauses the graph, so it needs a checkpointer "
            "(builder.compile(checkpointer=...)); use blocking_review_node to wait without one"
        )
    return run


def blocking_review_node(
    client: Handrail,
    *,
    action: ActionSource,
    on_approve: str,
    on_modify: str | None = None,
    on_reject: str = END,
    on_respond: str | None = None,
    allowed_decisions: Sequence[str | DecisionType] = ("approve", "reject", "modify"),
    timeout: float | None = None,
    decision_key: str | None = None,
    task: TaskFields | None = None,
) -> RunnableLambda[Any, Command[Any]]:
    """:func:`review_node` for graphs without a checkpointer: the node blocks (or awaits)
    until the decision, then routes the same way. After ``timeout`` seconds without one
    the task is withdrawn and the reject route is taken."""
    review = _review(
        client,
        action,
        allowed_decisions,
        on_approve,
        on_modify,
        on_reject,
        on_respond,
        timeout,
        decision_key,
        task,
    )

    def run(state: Any, config: RunnableConfig) -> Command[Any]:
        made = client.tasks.create(review.spec(state, _node_name(config)))
        try:
            done = client.tasks.wait(made.id, review.timeout)
        except WaitTimeout:
            try:
                withdrawn = client.tasks.cancel(made.id, _GAVE_UP)
                return review.route(state, withdrawn, _NO_ANSWER)
            except InvalidTransition:  # decided (or expired) just as the wait ran out
                done = client.tasks.get(made.id)
        return review.route(state, done, decision_of(done))

    async def arun(state: Any, config: RunnableConfig) -> Command[Any]:
        made = await client.tasks.acreate(review.spec(state, _node_name(config)))
        try:
            done = await client.tasks.await_(made.id, review.timeout)
        except WaitTimeout:
            try:
                withdrawn = await client.tasks.acancel(made.id, _GAVE_UP)
                return review.route(state, withdrawn, _NO_ANSWER)
            except InvalidTransition:
                done = await client.tasks.aget(made.id)
        return review.route(state, done, decision_of(done))

    return RunnableLambda(run, afunc=arun, name="blocking_review_node")


_GAVE_UP = "the graph stopped waiting"
_NO_ANSWER = Decision.reject("No human answered in time, so the action was not approved.")
