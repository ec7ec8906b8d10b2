"""The organisation's tasks (requesters and admins): a filtered, paged list, and one
task's status, decision or answer, verification and history, with cancel and dispute
where the engine allows them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from handrail import HandrailError, Kind, Role, Status

from ....problems import status_of
from ..._nav import add_nav
from ..._render import render
from ..._route import WebRoute
from ..._viewer import Viewer, ViewerDep, hub_of
from ._common import link, need, notice, text_field

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Tasks", "/org/tasks", Role.REQUESTER, order=20)

TaskId = Annotated[str, Path(max_length=64)]
Cursor = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=200)]
PAGE = 50


@router.get("/org/tasks")
async def task_list(
    request: Request,
    viewer: ViewerDep,
    status: Annotated[Status | None, Query()] = None,
    kind: Annotated[Kind | None, Query()] = None,
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    after: Cursor = None,
    limit: Limit = PAGE,
) -> Response:
    need(viewer, Role.REQUESTER)
    page = await hub_of(request).engine.list(
        viewer.principal,
        status=status,
        kind=kind,
        task_type=task_type or None,
        after=after or None,
        limit=limit,
        newest_first=True,
    )
    filters = {
        "status": status.value if status else "",
        "kind": kind.value if kind else "",
        "task_type": task_type or "",
    }
    limit_param = limit if limit != PAGE else None
    return render(
        request,
        "org/tasks.html",
        {
            "tasks": page.items,
            "filters": filters,
            "statuses": [s.value for s in Status],
            "kinds": [k.value for k in Kind],
            "next_url": link("/org/tasks", **filters, after=page.next_cursor, limit=limit_param)
            if page.next_cursor
            else None,
            "first_url": link("/org/tasks", **filters, limit=limit_param) if after else None,
        },
    )


async def _detail(
    request: Request,
    viewer: Viewer,
    task_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    need(viewer, Role.REQUESTER)
    engine = hub_of(request).engine
    task = await engine.get(viewer.principal, task_id)
    history = await engine.history(viewer.principal, task_id)
    return render(
        request,
        "org/task.html",
        {
            "task": task,
            "history": history,
            "decision": task.decision,
            "answers": task.answers(),
            "can_cancel": not task.terminal and not task.answers(),
            "can_dispute": task.status is Status.VERIFIED,
            "error": error,
            "notice": notice(request.query_params.get("done")),
        },
        status_code=status_code,
    )


@router.get("/org/tasks/{task_id}")
async def task_detail(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    return await _detail(request, viewer, task_id)


@router.post("/org/tasks/{task_id}/cancel")
async def cancel(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    need(viewer, Role.REQUESTER)
    form = await request.form()
    try:
        reason = text_field(form, "reason")
        await hub_of(request).engine.cancel(viewer.principal, task_id, reason or None)
    except HandrailError as exc:
        return await _detail(
            request, viewer, task_id, error=exc.message, status_code=status_of(exc)
        )
    return RedirectResponse(f"/org/tasks/{task_id}?done=cancelled", status_code=303)


@router.post("/org/tasks/{task_id}/dispute")
async def dispute(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    need(viewer, Role.REQUESTER)
    form = await request.form()
    try:
        reason = text_field(form, "reason")
        await hub_of(request).engine.dispute(viewer.principal, task_id, reason)
    except HandrailError as exc:
        return await _detail(
            request, viewer, task_id, error=exc.message, status_code=status_of(exc)
        )
    return RedirectResponse(f"/org/tasks/{task_id}?done=disputed", status_code=303)
