"""What workers leave on a task: their assignments, estimates, and the verification
pipeline's result (re-exported from :mod:`handrail.models`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, JsonValue

from ._model_base import _Model
from .money import Money


class AssignmentStatus(StrEnum):
    ACTIVE = "active"
    SUBMITTED = "submitted"
    RELEASED = "released"


class Assignment(_Model):
    """One worker's hold on a task, and its answer once submitted."""

    worker_id: str
    status: AssignmentStatus = AssignmentStatus.ACTIVE
    claimed_at: datetime
    submitted_at: datetime | None = None
    released_at: datetime | None = None
    output: JsonValue = None

    @property
    def holds_slot(self) -> bool:
        return self.status is not AssignmentStatus.RELEASED


class Estimate(_Model):
    """A worker's offer to do an estimate-first task for a price, in a time."""

    worker_id: str
    amount: Money | None = None
    eta_seconds: int | None = Field(default=None, ge=1)
    note: str | None = Field(default=None, max_length=2_000)
    offered_at: datetime
    approved_by: str | None = Field(
        default=None, description="who approved it: it never earns from the task"
    )


class StageResult(_Model):
    """One verification stage's verdict."""

    name: str
    verdict: Literal["pass", "fail", "uncertain"]
    score: float = Field(ge=0, le=100)
    reasons: tuple[str, ...] = ()


class Verification(_Model):
    """The verification pipeline's result, stored on the task."""

    outcome: Literal["verified", "failed", "manual_review", "repost", "more_answers"]
    score: float = Field(ge=0, le=100)
    stages: tuple[StageResult, ...] = ()
    output: JsonValue = None
    reasons: tuple[str, ...] = ()
