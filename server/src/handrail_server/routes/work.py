"""The reviewer's side: the queue, claims, decisions, answers, estimates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from handrail import Decision, Kind, RiskTier, Role

from ..auth import require
from ..deps import HubDep, PrincipalDep, SessionDep
from ..idempotency import idempotent
from ..schemas import (
    EstimateOffer,
    Reason,
    Submission,
    TaskId,
    TaskList,
    TaskOut,
    TokenDecision,
    TokenIn,
    TokenOut,
)

router = APIRouter(prefix="/v1", tags=["work"])


@router.get("/queue", response_model=TaskList)
async def queue(
    session: SessionDep,
    principal: PrincipalDep,
    kind: Kind | None = None,
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    risk_tier: RiskTier | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    wait: Annotated[float, Query(ge=0, le=60, description="long-poll while empty")] = 0,
    skip: Annotated[
        list[str] | None,
        Query(max_length=500, description="task ids to leave out (repeat the parameter)"),
    ] = None,
) -> dict[str, Any]:
    """Open tasks this reviewer may take, soonest deadline first, less the ``skip`` ids.
    With ``wait``, a queue with nothing else answers as soon as work arrives (or after
    ``wait`` seconds)."""
    require(principal, Role.REVIEWER)
    if wait or skip:
        tasks = await session.wait_for_work(
            wait,
            kind=kind,
            task_type=task_type,
            risk_tier=risk_tier,
            limit=limit,
            skip=frozenset(skip or ()),
        )
    else:
        tasks = await session.queue(
            kind=kind, task_type=task_type, risk_tier=risk_tier, limit=limit
        )
    return {"data": [TaskOut.of(t) for t in tasks], "has_more": False, "next_cursor": None}


@router.post("/tasks/{task_id}/claim", response_model=TaskOut)
async def claim(task_id: TaskId, session: SessionDep) -> dict[str, Any]:
    return TaskOut.of(await session.claim(task_id))


class AssignBody(BaseModel):
    worker_id: str = Field(min_length=1, max_length=200)


@router.post("/tasks/{task_id}/assignments", response_model=TaskOut)
async def assign(task_id: TaskId, body: AssignBody, session: SessionDep) -> dict[str, Any]:
    """An admin gives a slot of the task to a reviewer."""
    return TaskOut.of(await session.assign(task_id, body.worker_id))


@router.post("/tasks/{task_id}/estimate/withdraw", response_model=TaskOut)
async def withdraw_estimate(
    task_id: TaskId,
    session: SessionDep,
    body: Annotated[Reason | None, Body()] = None,
) -> dict[str, Any]:
    """The reviewer takes back the estimate it offered."""
    return TaskOut.of(await session.withdraw_estimate(task_id, body.reason if body else None))


@router.post("/tasks/{task_id}/release", response_model=TaskOut)
async def release(
    task_id: TaskId,
    session: SessionDep,
    body: Annotated[Reason | None, Body()] = None,
) -> dict[str, Any]:
    return TaskOut.of(await session.release(task_id, body.reason if body else None))


@router.post("/tasks/{task_id}/decision", response_model=TaskOut)
async def decide(
    request: Request,
    task_id: TaskId,
    decision: Decision,
    hub: HubDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> JSONResponse:
    """Decide a review task (claiming it in the same transaction when it is open)."""

    async def run(key: str | None) -> tuple[int, Any]:
        return 200, TaskOut.of(await session.decide(task_id, decision))

    body = decision.model_dump(mode="json")
    return await idempotent(request, hub.store, principal, body, run, hub.clock.now())


@router.post("/tasks/{task_id}/submissions", response_model=TaskOut)
async def submit(
    request: Request,
    task_id: TaskId,
    body: Submission,
    hub: HubDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> JSONResponse:
    """Answer a task (a review's answer is a decision). A reviewer that holds no slot
    claims one in the same transaction, as ``Engine.submit`` decides for every transport:
    an answer that does not fit claims nothing, and the same answer again changes nothing."""

    async def run(key: str | None) -> tuple[int, Any]:
        return 200, TaskOut.of(await session.submit(task_id, body.output))

    return await idempotent(
        request, hub.store, principal, body.model_dump(mode="json"), run, hub.clock.now()
    )


@router.post("/tasks/{task_id}/estimate", response_model=TaskOut)
async def offer_estimate(
    task_id: TaskId, body: EstimateOffer, session: SessionDep
) -> dict[str, Any]:
    task = await session.offer_estimate(
        task_id, amount=body.amount, eta_seconds=body.eta_seconds, note=body.note
    )
    return TaskOut.of(task)


@router.post("/tasks/{task_id}/decision-tokens", status_code=201, response_model=TokenOut)
async def mint_decision_token(
    task_id: TaskId, body: TokenIn, session: SessionDep
) -> dict[str, Any]:
    """A single-use, expiring token that lets ``reviewer_id`` decide this review (only as
    ``decision``, when given): what an email or chat link carries (admins). The reviewer
    must be one the policy allows."""
    token, claims = await session.mint_decision_token(
        task_id,
        body.reviewer_id,
        ttl_seconds=body.ttl_seconds,
        decision=body.decision,
    )
    return {
        "token": token,
        "token_id": claims.id,
        "task_id": claims.task_id,
        "reviewer_id": claims.reviewer_id,
        "expires_at": claims.expires_at,
        "decision": claims.decision.value if claims.decision else None,
    }


@router.post("/tasks/{task_id}/decision/by-token", response_model=TaskOut)
async def decide_by_token(task_id: TaskId, body: TokenDecision, hub: HubDep) -> dict[str, Any]:
    """Decide a review with a decision token instead of an API key. A token that is
    forged, expired, used, or for another task (or decision) is refused (403
    ``token_rejected``) and changes nothing."""
    task = await hub.engine.redeem_decision_token(body.token, body.decision, task_id=task_id)
    return TaskOut.of(task)
