"""Disputes: the organisation's disputed tasks with the requester's reason (requesters and
admins); admins resolve them, upholding the result or overturning it (the task fails)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from handrail import Event, HandrailError, Role, Status, TaskEvent
from handrail.errors import ValidationError

from ....problems import status_of
from ..._nav import add_nav
from ..._render import render
from ..._route import WebRoute
from ..._viewer import Viewer, ViewerDep, hub_of
from ._common import link, need, notice, text_field

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Disputes", "/org/disputes", Role.REQUESTER, order=40)

TaskId = Annotated[str, Path(max_length=64)]
PAGE = 20


def _opened(history: list[TaskEvent]) -> TaskEvent | None:
    """The event that opened the current dispute."""
    return next((e for e in reversed(history) if e.event is Event.DISPUTE), None)


async def _page(
    request: Request,
    viewer: Viewer,
    after: str | None,
    limit: int,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    need(viewer, Role.REQUESTER)
    engine = hub_of(request).engine
    page = await engine.list(viewer.principal, status=Status.DISPUTED, after=after, limit=limit)
    items = [(t, _opened(await engine.history(viewer.principal, t.id))) for t in page.items]
    limit_param = limit if limit != PAGE else None
    return render(
        request,
        "org/disputes.html",
        {
            "items": items,
            "can_resolve": viewer.is_admin,
            "next_url": link("/org/disputes", after=page.next_cursor, limit=limit_param)
            if page.next_cursor
            else None,
            "first_url": link("/org/disputes", limit=limit_param) if after else None,
            "error": error,
            "notice": notice(request.query_params.get("done")),
        },
        status_code=status_code,
    )


@router.get("/org/disputes")
async def dispute_list(
    request: Request,
    viewer: ViewerDep,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE,
) -> Response:
    return await _page(request, viewer, after or None, limit)


@router.post("/org/disputes/{task_id}/resolve")
async def resolve(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    """``verdict`` is ``uphold`` (the result stands) or ``overturn`` (the task fails);
    ``reason`` is required. The engine checks the admin role."""
    need(viewer, Role.REQUESTER)
    form = await request.form()
    try:
        verdict = text_field(form, "verdict")
        if verdict not in ("uphold", "overturn"):
            raise ValidationError.at("$.verdict", "choose uphold or overturn")
        reason = text_field(form, "reason")
        await hub_of(request).engine.resolve_dispute(
            viewer.principal, task_id, uphold=verdict == "uphold", reason=reason
        )
    except HandrailError as exc:
        return await _page(
            request,
            viewer,
            None,
            PAGE,
            error=f"Task {task_id}: {exc.message}",
            status_code=status_of(exc),
        )
    done = "upheld" if verdict == "uphold" else "overturned"
    return RedirectResponse(f"/org/disputes?done={done}", status_code=303)
