"""The reviewer's queue: open tasks this reviewer may take (the engine's queue, which
applies the worker profile and the policy's reviewer groups), soonest deadline first, then
highest risk; filters by task type and risk; live over server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from handrail import RiskTier, Role, Task
from handrail.wake import org_channel

from ...problems import ApiProblem
from .._nav import add_nav
from .._render import render
from .._route import WebRoute
from .._viewer import Viewer, ViewerDep, hub_of, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Queue", "/queue", Role.REVIEWER, order=10)

KEEPALIVE = 15.0
LIMIT = 200
TaskType = Annotated[str | None, Query(max_length=100)]
Risk = Annotated[str | None, Query(max_length=20)]


def _risk(value: str | None) -> RiskTier | None:
    if not value:
        return None
    try:
        return RiskTier(value)
    except ValueError:
        raise ApiProblem(422, "validation_error", f"unknown risk tier {value!r}") from None


async def _tasks(
    request: Request, viewer: Viewer, task_type: str | None, risk: str | None
) -> list[Task]:
    return await hub_of(request).engine.queue(
        viewer.principal, task_type=task_type or None, risk_tier=_risk(risk), limit=LIMIT
    )


def _filters(task_type: str | None, risk: str | None) -> str:
    query = {k: v for k, v in (("task_type", task_type), ("risk", risk)) if v}
    return urlencode(query)


@router.get("/queue")
async def queue_page(
    request: Request, viewer: ViewerDep, task_type: TaskType = None, risk: Risk = None
) -> Response:
    tasks = await _tasks(request, viewer, task_type, risk)
    everything = await _tasks(request, viewer, None, None)
    types = sorted({t.task_type for t in everything} | ({task_type} if task_type else set()))
    query = _filters(task_type, risk)
    return render(
        request,
        "queue.html",
        {
            "tasks": tasks,
            "task_type": task_type or "",
            "risk": risk or "",
            "types": types,
            "risks": [r.value for r in RiskTier],
            "rows_url": "/queue/rows" + (f"?{query}" if query else ""),
        },
    )


@router.get("/queue/rows")
async def queue_rows(
    request: Request, viewer: ViewerDep, task_type: TaskType = None, risk: Risk = None
) -> Response:
    """The table's rows alone: what the page fetches when the queue changes."""
    tasks = await _tasks(request, viewer, task_type, risk)
    return render(request, "_queue_rows.html", {"tasks": tasks})


async def _changes(request: Request, viewer: Viewer) -> AsyncIterator[str]:
    hub = hub_of(request)
    yield "retry: 3000\n: connected\n\n"
    async with hub.waker.subscribe([org_channel(viewer.principal.org_id)]) as sub:
        while True:
            changed = await sub.wait(KEEPALIVE)
            if not await signed_in(hub, viewer.session_id):
                yield "event: signed-out\ndata: {}\n\n"
                return
            yield "event: change\ndata: {}\n\n" if changed else ": keepalive\n\n"


@router.get("/queue/events")
async def queue_events(request: Request, viewer: ViewerDep) -> StreamingResponse:
    """Server-sent events: ``change`` whenever a task of the organisation changes (the page
    then refetches its rows, which the engine filters for this reviewer); the stream ends
    with ``signed-out`` when the session does."""
    await _tasks(request, viewer, None, None)  # a 403 for keys without the reviewer role
    headers: dict[str, Any] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _changes(request, viewer), media_type="text/event-stream", headers=headers
    )
