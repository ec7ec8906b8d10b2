"""Tasks: create, read, list, and the requester's and admin's moves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from handrail import Kind, Role, Status, TaskSpec

from ..auth import require
from ..deps import HubDep, PrincipalDep, SessionDep
from ..idempotency import header_key, idempotent
from ..schemas import (
    DisputeResolution,
    EventList,
    ManualVerdict,
    Reason,
    RequiredReason,
    TaskId,
    TaskList,
    TaskOut,
)

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.post("", status_code=201, response_model=TaskOut)
async def create_task(
    request: Request, spec: TaskSpec, hub: HubDep, principal: PrincipalDep, session: SessionDep
) -> JSONResponse:
    """Post a task. An ``Idempotency-Key`` header makes retries safe: the replay gets the
    stored response; another body with the same key is 422."""
    require(principal, Role.REQUESTER)
    # the request as the key's record is fingerprinted: only a keyed request has one
    body = spec.model_dump(mode="json") if header_key(request) is not None else None

    async def run(key: str | None) -> tuple[int, Any]:
        wanted = (
            spec
            if key is None or spec.idempotency_key
            else spec.model_copy(update={"idempotency_key": key})
        )
        task = await session.create(wanted)
        return 201, TaskOut.of(task)

    once = (spec.idempotency_key, 201, TaskOut.of)  # the key's record is written with the task
    return await idempotent(request, hub.store, principal, body, run, hub.clock.now(), once=once)


@router.get("", response_model=TaskList)
async def list_tasks(
    session: SessionDep,
    status: Annotated[list[Status] | None, Query()] = None,
    kind: Kind | None = None,
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    batch_id: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> dict[str, Any]:
    page = await session.list(
        status=list(status) if status else None,
        kind=kind,
        task_type=task_type,
        batch_id=batch_id,
        after=after,
        limit=limit,
        newest_first=order == "desc",
    )
    return {
        "data": [TaskOut.of(t) for t in page.items],
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
    }


@router.get("/{task_id}", response_model=TaskOut)
async def get_task(task_id: TaskId, session: SessionDep) -> dict[str, Any]:
    return TaskOut.of(await session.get(task_id))


@router.get("/{task_id}/history", response_model=EventList)
async def task_history(task_id: TaskId, session: SessionDep) -> dict[str, Any]:
    events = await session.history(task_id)
    return {"data": [e.model_dump(mode="json") for e in events]}


@router.post("/{task_id}/cancel", response_model=TaskOut)
async def cancel_task(
    task_id: TaskId,
    session: SessionDep,
    body: Annotated[Reason | None, Body()] = None,
) -> dict[str, Any]:
    return TaskOut.of(await session.cancel(task_id, body.reason if body else None))


@router.post("/{task_id}/dispute", response_model=TaskOut)
async def dispute_task(
    task_id: TaskId, body: RequiredReason, session: SessionDep
) -> dict[str, Any]:
    return TaskOut.of(await session.dispute(task_id, body.reason))


@router.post("/{task_id}/resolve-dispute", response_model=TaskOut)
async def resolve_dispute(
    task_id: TaskId, body: DisputeResolution, session: SessionDep
) -> dict[str, Any]:
    task = await session.resolve_dispute(task_id, uphold=body.uphold, reason=body.reason)
    return TaskOut.of(task)


@router.post("/{task_id}/verify", response_model=TaskOut)
async def verify_task(task_id: TaskId, body: ManualVerdict, session: SessionDep) -> dict[str, Any]:
    """Pass a task out of manual review (admins)."""
    return TaskOut.of(await session.verify(task_id, body.output, body.reason))


@router.post("/{task_id}/fail", response_model=TaskOut)
async def fail_task(task_id: TaskId, body: RequiredReason, session: SessionDep) -> dict[str, Any]:
    """Fail a task in manual review (admins)."""
    return TaskOut.of(await session.fail(task_id, body.reason))


@router.post("/{task_id}/estimate/approve", response_model=TaskOut)
async def approve_estimate(task_id: TaskId, session: SessionDep) -> dict[str, Any]:
    return TaskOut.of(await session.approve_estimate(task_id))


@router.post("/{task_id}/estimate/reject", response_model=TaskOut)
async def reject_estimate(
    task_id: TaskId,
    session: SessionDep,
    body: Annotated[Reason | None, Body()] = None,
) -> dict[str, Any]:
    task = await session.reject_estimate(task_id, body.reason if body else None)
    return TaskOut.of(task)
