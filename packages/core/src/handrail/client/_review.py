"""Asking a human, over any :class:`Session`: ``review`` (a decision on an action) and
``ask`` (a judgment fitting a schema), and how a finished review reads as a decision.

This is the client's own behaviour on top of the operations, so it is written once here
and run by ``Handrail.review``/``areview`` and ``ask``/``aask`` on the portal. It fails
closed: no path returns an approval that a reviewer did not give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from ..errors import InvalidTransition, NoAnswer, ReviewExpired, WaitTimeout
from ..lifecycle import Status
from ..models import Action, Decision, DecisionType, Kind, ReasonCode, Task, TaskSpec
from ..session import Session

__all__ = [
    "NO_ANSWER_IN_TIME",
    "REVIEW_EXPIRED",
    "OnTimeout",
    "action_of",
    "ask",
    "decision_of",
    "review",
]

OnTimeout = Literal["reject", "raise"]

NO_ANSWER_IN_TIME = "No human answered in time, so the action was not approved."
REVIEW_EXPIRED = "The review expired before anyone decided, so the action was not approved."


def _refused(message: str, code: ReasonCode, rule_id: str | None = None) -> Decision:
    return Decision(type=DecisionType.REJECT, message=message, reason_code=code, rule_id=rule_id)


def decision_of(task: Task, now: datetime | None = None) -> Decision:
    """The decision a finished review task stands for, at ``now`` (default: the system
    clock). Anything but a recorded approve or modify comes out as a reject: an unanswered
    review never becomes an approval, and an approval past its shelf life (``expires_at``)
    comes out as a reject with reason code ``expired``. System rejects carry a reason code
    (:class:`ReasonCode`), so an agent can tell them from a person's "no"."""
    if task.status is Status.VERIFIED and task.decision is not None:
        decision = task.decision
        if decision.is_approval and decision.expired(now):
            assert decision.expires_at is not None
            return _refused(
                f"The approval expired at {decision.expires_at.isoformat()} before it was "
                "used, so the action must not run; ask again.",
                ReasonCode.EXPIRED,
                decision.rule_id,
            )
        return decision
    rule_id = task.policy.rule_id if task.policy is not None else None
    if task.status is Status.EXPIRED:
        return _refused(REVIEW_EXPIRED, ReasonCode.TIMEOUT, rule_id)
    if task.status is Status.CANCELLED:
        return _refused(
            "The review was cancelled, so the action was not approved.",
            ReasonCode.CANCELLED,
            rule_id,
        )
    reason = task.failure_reason or task.status.value
    return _refused(
        f"The review did not pass ({reason}), so the action was not approved.",
        ReasonCode.VERIFICATION_FAILED,
        rule_id,
    )


def action_of(action: Action | Mapping[str, Any] | str, args: Mapping[str, Any] | None) -> Any:
    """An action as given: a name and ``args``, or a whole ``Action`` (or mapping)."""
    if isinstance(action, str):
        return {"name": action, "args": dict(args or {})}
    if args is not None:
        raise TypeError("give args inside the action, or name the action as a string")
    return action


def spec_of(spec: TaskSpec | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> Any:
    """A task spec as given: whole, or as keyword fields (not both)."""
    if spec is None:
        return dict(fields)
    if fields:
        raise TypeError("pass a spec or keyword fields, not both")
    return spec


async def review(
    session: Session,
    action: Action | Mapping[str, Any] | str,
    args: Mapping[str, Any] | None,
    reasoning: str | None,
    confidence: float | None,
    allowed: Sequence[DecisionType | str] | None,
    timeout: float | None,
    on_timeout: OnTimeout,
    fields: Mapping[str, Any],
) -> Decision:
    """See ``Handrail.review``."""
    if on_timeout not in ("reject", "raise"):
        raise ValueError("on_timeout must be 'reject' or 'raise'")
    spec: dict[str, Any] = {
        **fields,
        "kind": Kind.REVIEW,
        "action": action_of(action, args),
        "agent_reasoning": reasoning,
        "confidence": confidence,
    }
    if allowed is not None:
        spec["allowed_decisions"] = tuple(allowed)
    created = await session.create(spec)
    task = await _finish(session, created, timeout, on_timeout)
    if task is None:
        return _refused(NO_ANSWER_IN_TIME, ReasonCode.TIMEOUT)
    return decision_of(task, session.now())


async def ask(
    session: Session,
    question: str,
    output_schema: Mapping[str, Any],
    payload: Mapping[str, Any] | None,
    timeout: float | None,
    fields: Mapping[str, Any],
) -> Any:
    """See ``Handrail.ask``."""
    spec = {
        "task_type": "judgment",
        **fields,
        "kind": Kind.JUDGMENT,
        "title": question,
        "output_schema": dict(output_schema),
        "payload": dict(payload or {}),
    }
    task = await _finish(session, await session.create(spec), timeout, "raise")
    assert task is not None  # with "raise", a timeout raises instead
    if task.status is not Status.VERIFIED:
        raise NoAnswer(task.id, task.status.value, task.failure_reason)
    return task.output


async def _finish(
    session: Session, task: Task, timeout: float | None, on_timeout: OnTimeout
) -> Task | None:
    """Wait for ``task`` to end. On timeout withdraw it and return None (or raise with
    ``on_timeout="raise"``), unless a decision beat the withdrawal: then that counts."""
    try:
        task = await session.wait(task.id, timeout)
    except WaitTimeout:
        try:
            await session.cancel(task.id, "the agent stopped waiting")
        except InvalidTransition:
            return await session.get(task.id)  # decided or expired meanwhile
        if on_timeout == "raise":
            raise
        return None
    if task.status is Status.EXPIRED and on_timeout == "raise":
        raise ReviewExpired(task.id, float(task.sla_seconds))
    return task
