"""The manual-review queue (admins): tasks whose answers the verification could not settle,
with its result and each distinct answer; Verify (choosing the answer, or writing one) or
Fail (with a reason), through the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from handrail import HandrailError, Role, Status, Task

from ....problems import status_of
from ..._nav import add_nav
from ..._render import render
from ..._route import WebRoute
from ..._viewer import Viewer, ViewerDep, hub_of
from ._common import MAX_JSON, json_field, link, need, notice, text_field

__all__ = ["Answer", "distinct_answers", "router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Manual review", "/org/review", Role.ADMIN, order=30)

TaskId = Annotated[str, Path(max_length=64)]
PAGE = 20
CUSTOM = "custom"


@dataclass(frozen=True)
class Answer:
    """One distinct answer of a task, and the workers who gave it."""

    output: Any
    value: str  # the JSON the form sends back
    workers: list[str]


def distinct_answers(task: Task) -> list[Answer]:
    """The task's submitted answers, those that agree together (a decision's content, or
    a judgment's JSON), in the order they came."""
    found: dict[str, Answer] = {}
    for held in task.answers():
        key = task.answer_key(held.output)
        if key in found:
            found[key].workers.append(held.worker_id)
        else:
            value = json.dumps(held.output, ensure_ascii=False, sort_keys=True)
            found[key] = Answer(held.output, value, [held.worker_id])
    return list(found.values())


async def _page(
    request: Request,
    viewer: Viewer,
    after: str | None,
    limit: int,
    *,
    error: str | None = None,
    error_task: str | None = None,
    status_code: int = 200,
) -> Response:
    need(viewer, Role.ADMIN)
    page = await hub_of(request).engine.list(
        viewer.principal, status=Status.MANUAL_REVIEW, after=after, limit=limit
    )
    limit_param = limit if limit != PAGE else None
    return render(
        request,
        "org/review.html",
        {
            "items": [(t, distinct_answers(t)) for t in page.items],
            "custom": CUSTOM,
            "next_url": link("/org/review", after=page.next_cursor, limit=limit_param)
            if page.next_cursor
            else None,
            "first_url": link("/org/review", limit=limit_param) if after else None,
            "error": error,
            "error_task": error_task,
            "notice": notice(request.query_params.get("done")),
        },
        status_code=status_code,
    )


@router.get("/org/review")
async def review_queue(
    request: Request,
    viewer: ViewerDep,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE,
) -> Response:
    return await _page(request, viewer, after or None, limit)


async def _refused(request: Request, viewer: Viewer, task_id: str, exc: HandrailError) -> Response:
    return await _page(
        request,
        viewer,
        None,
        PAGE,
        error=f"Task {task_id}: {exc.message}",
        error_task=task_id,
        status_code=status_of(exc),
    )


@router.post("/org/review/{task_id}/verify")
async def verify(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    """Pass the task with the chosen answer (``output``: one answer's JSON, or ``custom``
    for ``output_json``, also taken when only it is filled in); without either, the
    answers must agree."""
    need(viewer, Role.ADMIN)
    form = await request.form()
    try:
        choice = text_field(form, "output", MAX_JSON)
        reason = text_field(form, "reason")
        if choice == CUSTOM or (not choice and text_field(form, "output_json", MAX_JSON)):
            output = json_field(form, "output_json")
        elif choice:
            output = json_field(form, "output")
        else:
            output = None
        await hub_of(request).engine.verify(viewer.principal, task_id, output, reason or None)
    except HandrailError as exc:
        return await _refused(request, viewer, task_id, exc)
    return RedirectResponse("/org/review?done=verified", status_code=303)


@router.post("/org/review/{task_id}/fail")
async def fail(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    need(viewer, Role.ADMIN)
    form = await request.form()
    try:
        reason = text_field(form, "reason")
        await hub_of(request).engine.fail(viewer.principal, task_id, reason)
    except HandrailError as exc:
        return await _refused(request, viewer, task_id, exc)
    return RedirectResponse("/org/review?done=failed", status_code=303)
