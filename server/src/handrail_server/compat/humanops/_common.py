"""HumanOps' names and shapes: statuses, task types, locations, how a task is shown, how
errors are worded, and the router the other modules add their routes to."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from handrail import Principal, Status, Task
from handrail.clock import utc
from handrail.money import Currency

from ...hub import Hub
from ...proofs import ProofType
from .._dialect import Failure, dialect_router
from .._shared import amount, hold_of

PREFIX = "/compat/humanops/api/v1"
DIALECT = "humanops"
USD = Currency.USD

STATUS: dict[Status, str] = {
    Status.POSTED: "PENDING",
    Status.ESTIMATE_PENDING: "ESTIMATE_PENDING",
    Status.ASSIGNED: "ACCEPTED",
    Status.SUBMITTED: "SUBMITTED",
    Status.MANUAL_REVIEW: "MANUAL_REVIEW",
    Status.VERIFIED: "COMPLETED",
    Status.FAILED: "DISPUTED",
    Status.DISPUTED: "DISPUTED",
    Status.CANCELLED: "CANCELLED",
    Status.EXPIRED: "EXPIRED",
}
HumanOpsStatus = Literal[
    "PENDING",
    "ESTIMATE_PENDING",
    "ACCEPTED",
    "IN_PROGRESS",
    "SUBMITTED",
    "VERIFIED",
    "MANUAL_REVIEW",
    "COMPLETED",
    "DISPUTED",
    "CANCELLED",
    "EXPIRED",
]
BY_STATUS: dict[str, frozenset[Status]] = {
    name: frozenset(s for s, shown in STATUS.items() if shown == name) for name in STATUS.values()
}
BY_STATUS["IN_PROGRESS"] = BY_STATUS["ACCEPTED"]
BY_STATUS["VERIFIED"] = BY_STATUS["COMPLETED"]  # transient in HumanOps: it is COMPLETED here

PHYSICAL = frozenset({"VERIFICATION", "PHOTO", "DELIVERY", "INSPECTION"})
DIGITAL = frozenset(
    {"CAPTCHA_SOLVING", "FORM_FILLING", "BROWSER_INTERACTION", "CONTENT_REVIEW", "DATA_VALIDATION"}
)
CREDENTIAL = frozenset(
    {"ACCOUNT_CREATION", "API_KEY_PROCUREMENT", "PHONE_VERIFICATION", "SUBSCRIPTION_SETUP"}
)
TaskType = Literal[
    "VERIFICATION",
    "PHOTO",
    "DELIVERY",
    "INSPECTION",
    "CAPTCHA_SOLVING",
    "FORM_FILLING",
    "BROWSER_INTERACTION",
    "CONTENT_REVIEW",
    "DATA_VALIDATION",
    "ACCOUNT_CREATION",
    "API_KEY_PROCUREMENT",
    "PHONE_VERIFICATION",
    "SUBSCRIPTION_SETUP",
]
SANDBOX_NOTICE = (
    "This is a simulated task. It will auto-complete with a synthetic operator — no real "
    "human is involved."
)
SANDBOX_DONE = (
    "This task was completed by a simulated operator with synthetic proof. The operator, "
    "proof, and verification are all generated."
)


def status_of(task: Task) -> str:
    return STATUS[task.status]


def when(value: datetime | None) -> str | None:
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


# ---------------------------------------------------------------- errors


def render(request: Request, failure: Failure) -> Response:
    """``{"error": message, "details": {...}}``; bad input is 400."""
    status = 400 if failure.code == "validation_error" else failure.status
    details: dict[str, Any] = {"code": failure.code, **failure.context}
    if failure.errors:
        details["errors"] = failure.errors
    body = {"error": failure.message, "details": details}
    return JSONResponse(body, status_code=status, headers=failure.headers)


router = dialect_router(PREFIX, "compat: HumanOps", render)


# ---------------------------------------------------------------- proof


def proof_type_of(task_type: str, given: ProofType | None) -> ProofType:
    if given:
        return given
    if task_type in CREDENTIAL:
        return "ARTIFACT"
    if task_type in ("CAPTCHA_SOLVING", "BROWSER_INTERACTION"):
        return "SCREENSHOT"
    if task_type in DIGITAL:
        return "CONFIRMATION"
    return "PHOTO"


# ---------------------------------------------------------------- tasks as HumanOps shows them


def operator_of(task: Task) -> dict[str, Any] | None:
    holder = next((a for a in reversed(task.assignments) if a.holds_slot), None)
    worker = holder.worker_id if holder else task.estimate.worker_id if task.estimate else None
    return {"id": worker, "name": worker, "rating": None} if worker else None


def guardian_of(task: Task) -> dict[str, Any] | None:
    check = task.verification
    if check is None:
        return None
    decision = {"verified": "APPROVE", "failed": "REJECT"}.get(check.outcome, "MANUAL_REVIEW")
    if task.status is Status.VERIFIED:
        decision = "APPROVE"  # passed out of manual review
    elif task.status is Status.FAILED:
        decision = "REJECT"
    reasons = "; ".join(check.reasons) or "All proof requirements met."
    return {"decision": decision, "confidence": round(check.score), "reasoning": reasons}


def proof_of(task: Task) -> dict[str, Any] | None:
    answer = next((a for a in reversed(task.assignments) if a.output is not None), None)
    if answer is None or not isinstance(answer.output, dict):
        return None
    return {**answer.output, "submittedAt": when(answer.submitted_at)}


def reward_of(task: Task) -> float | int:
    """The reward: held in escrow, or for a sandbox task (which holds nothing) as posted."""
    if task.payout is not None:
        return amount(task.payout)
    nominal = task.payload.get("reward_usd")
    return nominal if isinstance(nominal, int | float) else 0


def summary_of(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "title": task.title,
        "status": status_of(task),
        "task_type": task.task_type,
        "reward_usd": reward_of(task),
        "operator": operator_of(task),
        "created_at": when(task.created_at),
        "deadline": when(task.expires_at),
    }


def to_task(task: Task, fee: Any = None) -> dict[str, Any]:
    """A task with its proof, verification ("guardian") result and operator."""
    reached = task.reached_at
    shown = {
        **summary_of(task),
        "description": task.instructions,
        "location": task.payload.get("location"),
        "platform_fee_usd": fee,
        "proof_requirements": task.payload.get("proof_requirements", []),
        "proof_type": task.payload.get("proof_type"),
        "task_domain": task.payload.get("task_domain"),
        "digital_instructions": task.payload.get("digital_instructions"),
        "proof": proof_of(task),
        "guardian_result": guardian_of(task),
        "callback_url": task.callback_url,
        "estimate_minutes": minutes_of(task),
        "accepted_at": when(reached.get(Status.ASSIGNED)),
        "submitted_at": when(reached.get(Status.SUBMITTED)),
        "verified_at": when(reached.get(Status.VERIFIED)),
        "completed_at": when(reached.get(Status.VERIFIED)),
        "failure_reason": task.failure_reason,
    }
    if task.sandbox:
        shown["sandbox"] = True
        shown["sandbox_notice"] = SANDBOX_DONE if task.terminal else SANDBOX_NOTICE
    return shown


def minutes_of(task: Task) -> int | None:
    offer = task.estimate
    if offer is None or offer.eta_seconds is None:
        return None
    return math.ceil(offer.eta_seconds / 60)


async def fee_of(hub: Hub, task: Task) -> float | int:
    hold = await hold_of(hub, task)
    return amount(hold.fee) if hold is not None else 0


async def task_of(hub: Hub, principal: Principal, task_id: str) -> Task:
    return await hub.engine.get(principal, task_id)


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=1000)
    city: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=100)
