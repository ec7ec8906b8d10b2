"""Store-free pieces several engine operations share: what a principal is shown of a task,
releasing assignments, a decision the system makes, and the lapse at a deadline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .._steps import Step
from ..authority import policy_verification, sealed, system_decision
from ..lifecycle import BACKUP_AT, Event, Status
from ..models import (
    Assignment,
    AssignmentStatus,
    Decision,
    DecisionType,
    Principal,
    ReasonCode,
    Role,
    Task,
)
from ..tokens import TokenClaims

SYSTEM = "system"
"""The actor of what the engine does by itself (a policy's decision, verification)."""
MAX_PAGE = 500
"""The most tasks one page (or queue read) holds."""


def made_with(principal: Principal, token: TokenClaims | None = None) -> dict[str, Any]:
    """What a decision was made with: the API key, the decision token."""
    used: dict[str, Any] = {}
    if principal.key_id is not None:
        used["key_id"] = principal.key_id
    if token is not None:
        used["token_id"] = token.id
    return used


def shown(principal: Principal, task: Task) -> Task:
    """What ``principal`` may see of ``task``: a worker never learns it is a gold task."""
    return task if principal.has(Role.REQUESTER) else task.for_worker()


def released(task: Task, now: datetime, *, include_answers: bool = False) -> tuple[Assignment, ...]:
    """The assignments with every active one (and, if asked, every answer) released."""
    letting_go = {AssignmentStatus.ACTIVE} | (
        {AssignmentStatus.SUBMITTED} if include_answers else set()
    )
    return tuple(
        a.model_copy(update={"status": AssignmentStatus.RELEASED, "released_at": now})
        if a.status in letting_go
        else a
        for a in task.assignments
    )


def system_decides(step: Step, decision: Decision, why: str, **updates: Any) -> None:
    """Record a decision the system made (``policy`` event → verified)."""
    final = sealed(step.task, decision, step.now)
    output = final.model_dump(mode="json")
    step.move(
        Event.POLICY,
        Status.VERIFIED,
        output=output,
        verification=policy_verification(final, why),
        reason=why,
        data={"decision": output},
        actor=final.reviewer_id or SYSTEM,
        role=SYSTEM,
        **updates,
    )


def lapse(step: Step) -> None:
    """The deadline passed: a new attempt (workers released, answers kept, a fresh deadline)
    while attempts remain; otherwise the rule's default outcome when it approves, or
    expiry (which every waiting agent reads as a reject)."""
    task = step.task
    terms = task.policy
    if task.attempt >= task.max_attempts and terms is not None and terms.on_timeout == "approve":
        why = f"nobody decided in time: policy rule {terms.rule_id} approves by default"
        decision = system_decision(
            DecisionType.APPROVE, why, ReasonCode.TIMEOUT, terms.rule_id, step.now
        )
        system_decides(step, decision, why, assignments=released(task, step.now))
        return
    if task.attempt >= task.max_attempts:
        step.move(
            Event.EXPIRE,
            reason="the deadline passed before enough answers",
            assignments=released(task, step.now),
            actor="sla",
            role=SYSTEM,
        )
        return
    assignments = released(task, step.now)
    answered = any(a.status is AssignmentStatus.SUBMITTED for a in assignments)
    sla = timedelta(seconds=task.sla_seconds)
    step.move(
        Event.REROUTE,
        Status.ASSIGNED if answered else Status.POSTED,
        assignments=assignments,
        attempt=task.attempt + 1,
        expires_at=step.now + sla,
        backup_at=step.now + sla * BACKUP_AT,
        extra_slots=0,
        reason=f"attempt {task.attempt} of {task.max_attempts} ran out of time",
        actor="sla",
        role=SYSTEM,
    )
