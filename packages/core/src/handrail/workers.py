"""Workers: who may take which tasks, how reliable they are, and how busy.

A :class:`WorkerProfile` says what a worker may do (skills, trust tier, capacity, cost);
:class:`WorkerStats` is what the engine learned (per task type: answers, gold accuracy,
agreement with consensus, time on task). Reliability blends gold accuracy and consensus
agreement as a Beta posterior mean, gold counting double:

    reliability = (2·gold_correct + agreed + α) / (2·gold_total + agreed + disagreed + α + β)

with a Beta(α=3, β=1) prior (a new worker starts at 0.75).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from statistics import median

from pydantic import BaseModel, ConfigDict, Field

from .models import RISK_RANK, RiskTier

__all__ = ["PRIOR", "AnswerSample", "WorkerProfile", "WorkerStats", "mad_z", "reliability"]

PRIOR = (3.0, 1.0)
DURATION_SAMPLES = 200


class WorkerProfile(BaseModel):
    """What a worker may take on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str
    id: str
    skills: frozenset[str] = Field(
        default=frozenset(), description="task types; empty means any type"
    )
    trust_tier: RiskTier = Field(
        default=RiskTier.MEDIUM, description="the highest risk tier the worker may take"
    )
    capacity: int = Field(default=3, ge=1, le=1000, description="tasks held at once")
    cost_minor: int = Field(default=0, ge=0, description="the least reward the worker takes")
    active: bool = True
    version: int = 1

    def can_do(self, task_type: str, risk_tier: RiskTier) -> bool:
        return (
            self.active
            and (not self.skills or task_type in self.skills)
            and RISK_RANK[self.trust_tier] >= RISK_RANK[risk_tier]
        )


class WorkerStats(BaseModel):
    """What the engine has learned about one worker on one task type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str
    worker_id: str
    task_type: str
    answers: int = 0
    gold_total: int = 0
    gold_correct: int = 0
    agreed: int = 0
    disagreed: int = 0
    durations: tuple[float, ...] = Field(default=(), description="recent seconds on task")
    labels: dict[str, int] = Field(default_factory=dict, description="answer counts by label")
    updated_at: datetime | None = None
    version: int = 1

    @property
    def reliability(self) -> float:
        return reliability(self.gold_correct, self.gold_total, self.agreed, self.disagreed)

    @property
    def median_duration(self) -> float | None:
        return median(self.durations) if self.durations else None

    def with_answer(
        self,
        *,
        seconds: float | None,
        label: str | None,
        gold: bool | None = None,
        agreed: bool | None = None,
        at: datetime | None = None,
    ) -> WorkerStats:
        durations = self.durations
        if seconds is not None:
            durations = (*durations, seconds)[-DURATION_SAMPLES:]
        labels = dict(self.labels)
        if label is not None:
            labels[label] = labels.get(label, 0) + 1
        return self.model_copy(
            update={
                "answers": self.answers + 1,
                "gold_total": self.gold_total + (gold is not None),
                "gold_correct": self.gold_correct + (gold is True),
                "agreed": self.agreed + (agreed is True),
                "disagreed": self.disagreed + (agreed is False),
                "durations": durations,
                "labels": labels,
                "updated_at": at,
                "version": self.version + 1,
            }
        )


class AnswerSample(BaseModel):
    """One judged answer, as the crowd's record for a task type keeps it (append-only, so
    concurrent verifications never contend for a shared row)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str
    task_type: str
    worker_id: str
    seconds: float | None = None
    label: str | None = None
    at: datetime


def reliability(gold_correct: int, gold_total: int, agreed: int, disagreed: int) -> float:
    """The Beta posterior mean described in the module docstring, in (0, 1)."""
    alpha, beta = PRIOR
    right = 2 * gold_correct + agreed + alpha
    seen = 2 * gold_total + agreed + disagreed + alpha + beta
    return right / seen


def mad_z(value: float, sample: Sequence[float]) -> float | None:
    """The robust z-score of ``value`` against ``sample``: 0.6745·(x − median)/MAD.

    None when the sample is too small (under 10) or has no spread.
    """
    if len(sample) < 10:
        return None
    mid = median(sample)
    mad = median(abs(x - mid) for x in sample)
    if mad == 0:
        return None
    return 0.6745 * (value - mid) / mad
