"""Request and response bodies of the HTTP API (never ORM classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from handrail import Money, Task, TaskEvent
from handrail.ledger import EntryRecord, PayoutRecord

__all__ = [
    "Reason",
    "TaskId",
    "TaskList",
    "TaskOut",
    "WorkerId",
]

_INTERNAL = {"request_fingerprint", "version"}

# Ids in paths, as long as the columns they are stored in (an idempotency record keeps the
# path; a worker profile its id): longer ones are refused before they reach the database.
TaskId = Annotated[str, Path(min_length=1, max_length=64)]
WorkerId = Annotated[str, Path(min_length=1, max_length=200)]


class TaskOut(Task):
    """A task as the API shows it."""

    model_config = ConfigDict(json_schema_extra={"description": "A task and where it stands."})

    # internal: left out even when FastAPI validates ``of``'s dict against this model (which
    # would otherwise put them back, at their defaults)
    request_fingerprint: str | None = Field(default=None, exclude=True)
    version: int = Field(default=1, exclude=True)

    @classmethod
    def of(cls, task: Task) -> dict[str, Any]:
        return task.model_dump(mode="json", exclude=_INTERNAL)


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
