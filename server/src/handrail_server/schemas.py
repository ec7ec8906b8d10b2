"""Request and response bodies of the HTTP API (never ORM classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from handrail import Action, Decision, Money, RiskTier, Task, TaskEvent
from handrail.audit import AuditEntry
from handrail.ledger import EntryRecord, PayoutRecord
from handrail.policy import MAX_RULES, PolicyRule, StandingApproval

from .modes import organisation

__all__ = [
    "AuditList",
    "ExplainIn",
    "GroupIn",
    "PolicyIn",
    "Reason",
    "StandingList",
    "TaskId",
    "TaskList",
    "TaskOut",
    "TokenDecision",
    "TokenIn",
    "TokenOut",
    "WorkerId",
]

_INTERNAL = {"request_fingerprint", "version"}

# Ids in paths, as long as the columns they are stored in (an idempotency record keeps the
# path; a worker profile its id): longer ones are refused before they reach the database.
TaskId = Annotated[str, Path(min_length=1, max_length=64)]
WorkerId = Annotated[str, Path(min_length=1, max_length=200)]
GroupName = Annotated[str, Path(min_length=1, max_length=100)]


class TaskOut(Task):
    """A task as the API shows it."""

    model_config = ConfigDict(json_schema_extra={"description": "A task and where it stands."})

    # internal: left out even when FastAPI validates ``of``'s dict against this model (which
    # would otherwise put them back, at their defaults)
    request_fingerprint: str | None = Field(default=None, exclude=True)
    version: int = Field(default=1, exclude=True)

    @classmethod
    def of(cls, task: Task) -> dict[str, Any]:
        """The task's JSON, naming the organisation its people know (a sandbox task lives
        in the organisation's sandbox world, and says ``sandbox: true``)."""
        shown = task.model_dump(mode="json", exclude=_INTERNAL)
        shown["org_id"] = organisation(task.org_id)
        return shown


class TaskList(BaseModel):
    data: list[TaskOut]
    has_more: bool
    next_cursor: str | None


class EventList(BaseModel):
    data: list[TaskEvent]


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=10_000)


class RequiredReason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=10_000)


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: JsonValue


class ManualVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    output: JsonValue = None
    reason: str | None = Field(default=None, max_length=10_000)


class DisputeResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uphold: bool
    reason: str = Field(min_length=1, max_length=10_000)


class EstimateOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Money | None = None
    eta_seconds: int | None = Field(default=None, ge=1)
    note: str | None = Field(default=None, max_length=2_000)


class DepositIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Money
    reference: str | None = Field(default=None, max_length=500)


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Money


class EntryList(BaseModel):
    data: list[EntryRecord]
    has_more: bool
    next_cursor: int | None


class PayoutList(BaseModel):
    data: list[PayoutRecord]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "requester", "reviewer"]
    sandbox: bool = False
    principal: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class KeyOut(BaseModel):
    id: str
    org_id: str
    prefix: str
    role: str
    principal: str
    sandbox: bool
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    key: str | None = Field(default=None, description="only when the key is created")


class Health(BaseModel):
    status: Literal["ok"]
    database: str
    revision: str | None


# ---------------------------------------------------------------- policies and authority


class PolicyIn(BaseModel):
    """A new version of the organisation's policy; ``expected_version`` refuses (409) the
    save when another version was saved since."""

    model_config = ConfigDict(extra="forbid")
    rules: list[PolicyRule] = Field(default_factory=list, max_length=MAX_RULES)
    expected_version: int | None = Field(default=None, ge=0)


class ExplainIn(BaseModel):
    """A review to try the policy on (nothing is created), and optionally a policy to try
    instead of the saved one."""

    model_config = ConfigDict(extra="forbid")
    action: Action
    task_type: str | None = Field(default=None, min_length=1, max_length=100)
    risk_tier: RiskTier = RiskTier.MEDIUM
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    confidence: float | None = Field(default=None, ge=0, le=1)
    policy: PolicyIn | None = None


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=10_000
    )
    description: str | None = Field(default=None, max_length=1_000)


class StandingList(BaseModel):
    data: list[StandingApproval]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer_id: str = Field(min_length=1, max_length=200)
    ttl_seconds: int = Field(default=24 * 3600, ge=1, le=30 * 24 * 3600)
    decision: Literal["approve", "reject", "modify", "respond"] | None = None


class TokenOut(BaseModel):
    token: str = Field(description="the credential a link carries: shown once")
    token_id: str
    task_id: str
    reviewer_id: str
    expires_at: datetime
    decision: str | None


class TokenDecision(BaseModel):
    """A decision made with a decision token (no API key needed: the token is the
    credential)."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=2_000)
    decision: Decision


class AuditList(BaseModel):
    data: list[AuditEntry]
    next_cursor: int | None
