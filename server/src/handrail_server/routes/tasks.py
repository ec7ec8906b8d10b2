"""Tasks: create, read, list, and the requester's and admin's moves."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from handrail import Kind, Principal, Role, Session, Status, TaskSpec

from ..access import guard
from ..auth import require
from ..deps import HubDep, PrincipalDep, SessionDep, hub_of
from ..guards import checked_json
from ..hub import Hub
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


class _ParsedOnce(APIRoute):
    """``POST /v1/tasks`` with a plain JSON object for a body and no query: the body parsed
    once (the input check's parse is the one validated), and none of FastAPI's dependency
    solving, which costs this route, the one every gated tool call takes, a fifth of its
    time. It runs what the route's dependencies do, in their order (the input check, the
    route table, the key), and raises what they raise, so the app's handlers answer as
    ever. Anything else (no body, not JSON, a query) takes the route as FastAPI runs it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        routed = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.scope.get("query_string"):
                return await routed(request)
            parsed = await checked_json(request)
            if not isinstance(parsed, dict):
                return await routed(request)
            await guard(request)
            hub = hub_of(request)
            principal = await hub.auth.principal(request)
            try:
                spec = TaskSpec.model_validate(parsed)
            except pydantic.ValidationError as exc:
                errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                raise RequestValidationError(errors, body=parsed) from None
            return await _create(
                request, spec, hub, principal, hub.engine.session(principal, hub.ledger)
            )

        return handler


router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


async def create_task(
    request: Request, spec: TaskSpec, hub: HubDep, principal: PrincipalDep, session: SessionDep
) -> JSONResponse:
    """Post a task. An ``Idempotency-Key`` header makes retries safe: the replay gets the
    stored response; another body with the same key is 422."""
    return await _create(request, spec, hub, principal, session)


router.add_api_route(
    "",
    create_task,
    methods=["POST"],
    status_code=201,
    response_model=TaskOut,
    route_class_override=_ParsedOnce,
)


async def _create(
    request: Request, spec: TaskSpec, hub: Hub, principal: Principal, session: Session
) -> JSONResponse:
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
