"""HumanOps' tasks, from the agent's side: post, list, read, cancel, estimates, manual
review, credentials."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from handrail import Kind, Principal, Role, Status, Task
from handrail.clock import utc
from handrail.errors import IdempotencyConflict, InvalidTransition, NotFound, ValidationError
from handrail.ids import new_id
from handrail.models import MAX_SLA_SECONDS

from ...auth import require
from ...deps import HubDep, PrincipalDep
from ...hub import Hub
from ...idempotency import parse_key
from ...problems import ApiProblem
from ...proofs import ProofType, proof_schema
from ...schemas import TaskId
from .._shared import Callback, amount, create_task, existing_task, hold_of, money, scan
from ._common import (
    BY_STATUS,
    CREDENTIAL,
    DIALECT,
    PHYSICAL,
    SANDBOX_NOTICE,
    USD,
    HumanOpsStatus,
    Location,
    TaskType,
    fee_of,
    minutes_of,
    operator_of,
    proof_type_of,
    reward_of,
    router,
    status_of,
    summary_of,
    task_of,
    to_task,
    when,
)

# ---------------------------------------------------------------- tasks


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(min_length=1, max_length=50_000)
    location: Location | None = None
    reward_usd: Decimal = Field(gt=0, le=10_000, allow_inf_nan=False)
    deadline: datetime
    proof_requirements: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=50
    )
    task_type: TaskType
    task_domain: Literal["PHYSICAL", "DIGITAL"] | None = None
    proof_type: ProofType | None = None
    digital_instructions: str | None = Field(default=None, max_length=10_000)
    callback_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    callback_secret: str | None = Field(default=None, min_length=1, max_length=200)
    agent_public_key: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)


def _sla(deadline: datetime, now: datetime) -> int:
    # a second short: the task is made a moment after ``now``, and must end by the deadline
    seconds = math.floor((utc(deadline) - now).total_seconds()) - 1
    if seconds < 60:
        raise ValidationError.at("$.deadline", "must be at least a minute from now")
    if seconds > MAX_SLA_SECONDS:
        raise ValidationError.at("$.deadline", "must be within 30 days")
    return seconds


def _spec(
    body: TaskIn, principal: Principal, key: str, now: datetime, sla: int | None = None
) -> dict[str, Any]:
    """The task ``body`` asks for. Its ``deadline`` is kept as sent (``metadata``), and
    becomes seconds from ``now``, unless ``sla`` gives them: the first request's, for a
    retry, whose fingerprint must be the first's though its ``now`` is later."""
    domain = body.task_domain or ("PHYSICAL" if body.task_type in PHYSICAL else "DIGITAL")
    if domain == "PHYSICAL" and body.location is None:
        raise ValidationError.at("$.location", "a physical task needs a location")
    if body.task_type in CREDENTIAL and not body.agent_public_key:
        raise ValidationError.at("$.agent_public_key", "a credential task needs it")
    proof = proof_type_of(body.task_type, body.proof_type)
    location = body.location.model_dump(exclude_none=True) if body.location else None
    reward = money(body.reward_usd, USD, "$.reward_usd")
    payload: dict[str, JsonValue] = {
        "location": location or {"address": "Remote/Digital"},
        "proof_requirements": list(body.proof_requirements),
        "proof_type": proof,
        "task_domain": domain,
        "digital_instructions": body.digital_instructions,
        "agent_public_key": body.agent_public_key,
    }
    if principal.sandbox:  # HumanOps' sandbox escrows nothing: no money moves at all
        payload["reward_usd"] = amount(reward)
    return {
        "kind": Kind.JUDGMENT,
        "task_type": body.task_type,
        "title": body.title,
        "instructions": body.description,
        "payload": payload,
        "output_schema": proof_schema(proof),
        "sla_seconds": sla if sla is not None else _sla(body.deadline, now),
        "metadata": {"humanops_deadline": utc(body.deadline).isoformat()},
        "payout": None if principal.sandbox else reward,
        # live tasks go to an operator who offers an estimate; the simulated one just answers
        "require_estimate": not principal.sandbox,
        "callback_url": body.callback_url,
        "idempotency_key": key,
    }


async def _create(
    hub: Hub, principal: Principal, body: TaskIn, key: str, callback: Callback | None
) -> tuple[Task, bool]:
    """The task, and whether it was there already. A retry (the key names a task) asks for
    the first request's seconds to its deadline, so it replays; so does the loser of twins
    sent at once, whose seconds may be one fewer than the winner's."""
    first = await existing_task(hub, principal, key)
    sla = first.sla_seconds if first is not None else None
    spec = _spec(body, principal, key, hub.clock.now(), sla)
    try:
        return await create_task(hub, principal, spec, callback=callback)
    except IdempotencyConflict:
        twin = None if first is not None else await existing_task(hub, principal, key)
        if twin is None:
            raise
    # the twin's seconds: the same request replays, another is still a conflict
    return await create_task(hub, principal, {**spec, "sla_seconds": twin.sla_seconds})


@router.post("/tasks", status_code=201)
async def create(
    body: TaskIn,
    hub: HubDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> JSONResponse:
    """Post a task, holding reward + fee from the balance (402 when it falls short). The
    same ``Idempotency-Key`` again returns the same task (200)."""
    require(principal, Role.REQUESTER)
    header = parse_key(idempotency_key)
    key = header or body.idempotency_key or f"humanops:{new_id()}"
    callback = None
    if body.callback_url is not None:
        callback = Callback(body.callback_url, DIALECT, body.callback_secret or "")
    task, replayed = await _create(hub, principal, body, key, callback)
    hold = await hold_of(hub, task)
    shown: dict[str, Any] = {
        "task_id": task.id,
        "status": status_of(task),
        "reward_usd": reward_of(task),
        "platform_fee": amount(hold.fee) if hold else 0,
        "total_escrow": amount(hold.amount) if hold else 0,
        "deadline": when(task.expires_at),
        "created_at": when(task.created_at),
    }
    if task.sandbox:
        shown["sandbox"] = True
        shown["sandbox_notice"] = SANDBOX_NOTICE
    return JSONResponse(shown, status_code=200 if replayed else 201)


async def _page(
    hub: Hub,
    principal: Principal,
    tasks: list[Task],
    limit: int,
    offset: int,
    full: bool = False,
) -> dict[str, Any]:
    page = tasks[offset : offset + limit]
    data = [to_task(t, await fee_of(hub, t)) if full else summary_of(t) for t in page]
    return {"data": data, "pagination": {"limit": limit, "offset": offset, "total": len(tasks)}}


@router.get("/tasks")
async def list_tasks(
    hub: HubDep,
    principal: PrincipalDep,
    status: HumanOpsStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict[str, Any]:
    """The agent's tasks, newest first."""
    found = [
        t
        async for t in scan(
            hub,
            principal,
            statuses=BY_STATUS[status] if status else None,
            kind=Kind.JUDGMENT,
            newest_first=True,
        )
    ]
    return await _page(hub, principal, found, limit, offset)


@router.get("/tasks/{task_id}")
async def get_task(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    task = await task_of(hub, principal, task_id)
    return to_task(task, await fee_of(hub, task))


@router.post("/tasks/{task_id}/cancel")
async def cancel(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """Cancel a PENDING, ESTIMATE_PENDING or ACCEPTED task: the escrow comes back."""
    task = await hub.engine.cancel(principal, task_id, "cancelled by the agent")
    hold = await hold_of(hub, task)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "refunded_usd": amount(hold.amount) if hold else 0,
    }


@router.post("/tasks/{task_id}/estimate/approve")
async def approve_estimate(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    before = await task_of(hub, principal, task_id)
    task = await hub.engine.approve_estimate(principal, task_id)
    operator = operator_of(task)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "accepted_at": when(task.reached_at.get(Status.ASSIGNED)),
        "operator": {"name": operator["name"], "rating": None} if operator else None,
        "estimate_minutes": minutes_of(before),
    }


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=10_000)


@router.post("/tasks/{task_id}/estimate/reject")
async def reject_estimate(
    task_id: TaskId, hub: HubDep, principal: PrincipalDep, body: Reason | None = None
) -> dict[str, Any]:
    task = await hub.engine.reject_estimate(principal, task_id, body.reason if body else None)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "message": "Estimate rejected. Task is available again.",
    }


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["APPROVE", "REJECT"]
    reason: str | None = Field(default=None, max_length=10_000)


@router.post("/tasks/{task_id}/verify")
async def verify(
    task_id: TaskId, body: Verdict, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Pass or fail a task in MANUAL_REVIEW. In Handrail a person with an admin key makes
    that call, not the agent that posted the task."""
    if not principal.has(Role.ADMIN):
        raise ApiProblem(403, "forbidden", "manual review takes an admin key in Handrail")
    if body.decision == "APPROVE":
        task = await hub.engine.verify(principal, task_id, reason=body.reason)
        message = "Task manually approved and completed."
    else:
        why = body.reason or "rejected in manual review"
        task = await hub.engine.fail(principal, task_id, why)
        message = "Task manually rejected."
    return {"task_id": task.id, "status": status_of(task), "message": message}


async def _credential(task_id: str, hub: Hub, principal: Principal) -> dict[str, Any]:
    task = await task_of(hub, principal, task_id)
    if task.status is not Status.VERIFIED:
        raise InvalidTransition(task.id, task.status.value, "retrieve_credential")
    found = task.output.get("encrypted_credential") if isinstance(task.output, dict) else None
    if not isinstance(found, dict):
        raise NotFound("credential", task.id)
    return {"task_id": task.id, "encrypted_credential": found}


@router.post("/tasks/{task_id}/retrieve-credential")
async def retrieve_credential(
    task_id: TaskId, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The encrypted credential of a completed credential task (decrypt it yourself)."""
    return await _credential(task_id, hub, principal)


router.add_api_route("/tasks/{task_id}/retrieve-credential", retrieve_credential, methods=["GET"])
