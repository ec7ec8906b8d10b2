"""Pieces of engine operations that need no store: a step of transitions, claiming,
checking a decision, and reading enum filters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from . import lifecycle
from ._jsonschema import validation_issues
from .errors import DecisionNotAllowed, InvalidTransition, NotAssigned, ValidationError
from .ids import new_id
from .lifecycle import Event, Status
from .models import (
    Assignment,
    AssignmentStatus,
    Decision,
    DecisionType,
    Kind,
    RiskTier,
    Task,
    TaskEvent,
)

__all__ = [
    "Move",
    "Step",
    "already_answered",
    "answered",
    "check_decision",
    "claim",
    "enum_value",
    "need_text",
    "replace",
]


@dataclass
class Move:
    before: Task
    after: Task
    event: Event


@dataclass
class Step:
    """The transitions one operation makes, applied to a working copy of the task."""

    task: Task
    actor: str
    role: str
    now: datetime
    events: list[TaskEvent] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)

    def move(
        self,
        event: Event,
        target: Status | None = None,
        *,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
        role: str | None = None,
        **updates: Any,
    ) -> None:
        before = self.task
        to = lifecycle.check(before.id, before.status, event, target)
        reached = before.reached_at
        if to is not before.status:
            reached = {**reached, to: self.now}
        after = before.model_copy(
            update={"status": to, "reached_at": reached, "updated_at": self.now, **updates}
        )
        self.task = after
        self.moves.append(Move(before, after, event))
        self.events.append(
            TaskEvent(
                id=new_id(),
                task_id=after.id,
                org_id=after.org_id,
                at=self.now,
                actor=actor or self.actor,
                actor_role=role or self.role,
                event=event,
                from_status=before.status,
                to_status=to,
                reason=reason,
                data=data or {},
            )
        )


E = TypeVar("E", Status, Kind, RiskTier, DecisionType)


def enum_value(cls: type[E], value: str, path: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ValidationError.at(path, f"{value!r} is not one of: {allowed}") from None


def need_text(value: str, path: str) -> str:
    if not value or not value.strip():
        raise ValidationError.at(path, "must not be blank")
    return value.strip()


def replace(
    assignments: tuple[Assignment, ...], old: Assignment, new: Assignment
) -> tuple[Assignment, ...]:
    index = max(i for i, a in enumerate(assignments) if a is old)
    return (*assignments[:index], new, *assignments[index + 1 :])


def claim(step: Step, worker: str, *, pushed_by: str | None = None) -> None:
    task = step.task
    if task.require_estimate and task.status is Status.POSTED:
        raise InvalidTransition(
            task.id, task.status.value, "claim", detail="this task wants an estimate first"
        )
    earlier = task.assignment_of(worker)
    if earlier is not None and earlier.status is AssignmentStatus.SUBMITTED:
        raise InvalidTransition(
            task.id, task.status.value, "claim", detail=f"{worker} has already answered"
        )
    if task.status in (Status.POSTED, Status.ASSIGNED) and task.open_slots <= 0:
        raise InvalidTransition(task.id, task.status.value, "claim", detail="no free slot")
    step.move(
        Event.CLAIM,
        Status.ASSIGNED,
        assignments=(*task.assignments, Assignment(worker_id=worker, claimed_at=step.now)),
        data={"worker_id": worker, **({"pushed_by": pushed_by} if pushed_by else {})},
    )


def answered(task: Task, worker: str, now: datetime, output: Any) -> tuple[Assignment, ...]:
    """The assignments with ``worker``'s active one holding its answer (``NotAssigned`` when
    it holds none)."""
    held = task.active_assignment(worker)
    if held is None:
        raise NotAssigned(task.id, worker)
    done = held.model_copy(
        update={"status": AssignmentStatus.SUBMITTED, "submitted_at": now, "output": output}
    )
    return replace(task.assignments, held, done)


def already_answered(task: Task, worker: str, output: Any) -> bool:
    done = task.assignment_of(worker)
    return (
        done is not None
        and done.status is AssignmentStatus.SUBMITTED
        and json.dumps(done.output, sort_keys=True) == json.dumps(output, sort_keys=True)
    )


def check_decision(task: Task, decision: Decision) -> None:
    if decision.type not in task.allowed_decisions:
        raise DecisionNotAllowed(
            task.id, decision.type.value, [d.value for d in task.allowed_decisions]
        )
    if decision.type is DecisionType.MODIFY:
        assert task.action is not None and decision.args is not None
        schema = task.action.args_schema
        renamed = decision.tool is not None and decision.tool != task.action.name
        if schema is not None and not renamed:  # the schema is the proposed tool's
            issues = validation_issues(decision.args, schema, "$.args")
            if issues:
                raise ValidationError(issues, summary="modified args do not fit the tool's schema")
