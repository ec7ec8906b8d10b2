"""Batch review: the parallel tool calls of one agent turn (tasks sharing a ``batch_id``)
on one page, each with its own decision, and "approve all" when every open review in the
batch allows an approve. Each decision goes through the engine as the signed-in reviewer,
one task at a time, so the policy's checks apply to each; refusals are listed per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from handrail import DecisionType, HandrailError, Kind, Task

from ...problems import ApiProblem
from .._render import render
from .._route import WebRoute
from .._viewer import Viewer, ViewerDep, hub_of
from .task import open_to

router = APIRouter(route_class=WebRoute, include_in_schema=False)

BatchId = Annotated[str, Path(min_length=1, max_length=200)]
MAX_BATCH = 100


@dataclass(frozen=True)
class Outcome:
    task: Task
    ok: bool
    detail: str


def actionable(task: Task, viewer: Viewer) -> bool:
    """Whether the viewer could decide this review now (the engine has the last word)."""
    return task.kind is Kind.REVIEW and open_to(task, viewer)


async def batch_tasks(request: Request, viewer: Viewer, batch_id: str) -> list[Task]:
    page = await hub_of(request).engine.list(viewer.principal, batch_id=batch_id, limit=MAX_BATCH)
    if not page.items:
        raise ApiProblem(404, "not_found", f"no batch {batch_id!r}")
    return list(page.items)


async def _page(
    request: Request,
    viewer: Viewer,
    batch_id: str,
    outcomes: list[Outcome] | None = None,
    status_code: int = 200,
) -> Response:
    tasks = await batch_tasks(request, viewer, batch_id)
    open_ = [t for t in tasks if actionable(t, viewer)]
    approve_all = bool(open_) and all(DecisionType.APPROVE in t.allowed_decisions for t in open_)
    return render(
        request,
        "batch.html",
        {
            "batch_id": batch_id,
            "tasks": tasks,
            "actionable": {t.id for t in open_},
            "approve_all": approve_all,
            "outcomes": outcomes or [],
            "done": request.query_params.get("done"),
        },
        status_code=status_code,
    )


@router.get("/batches/{batch_id}")
async def show_batch(request: Request, batch_id: BatchId, viewer: ViewerDep) -> Response:
    return await _page(request, viewer, batch_id)


def _shown(values: list[str]) -> dict[str, int]:
    """The reviews the page showed, as ``id@version`` hidden fields: task id to version."""
    shown: dict[str, int] = {}
    for value in values:
        task_id, _, version = value.rpartition("@")
        if not task_id or not version.isdigit():
            raise ApiProblem(422, "invalid_form", "the page sent a malformed review list: reload")
        shown[task_id] = int(version)
    return shown


@router.post("/batches/{batch_id}/approve-all")
async def approve_all(request: Request, batch_id: BatchId, viewer: ViewerDep) -> Response:
    """Approve the open reviews of the batch that the page showed, as it showed them, each
    through the engine. A call that joined the batch since, or changed since, is left for
    the reviewer to see (never approved unseen); the whole request is refused when any of
    them does not allow an approve (nothing is decided then)."""
    hub = hub_of(request)
    form = await request.form()
    shown = _shown([v for v in form.getlist("task") if isinstance(v, str)])
    tasks = [t for t in await batch_tasks(request, viewer, batch_id) if actionable(t, viewer)]
    if not shown or not tasks:
        raise ApiProblem(409, "nothing_open", "no review in this batch is open to you")
    refused = [
        t for t in tasks if t.id in shown and DecisionType.APPROVE not in t.allowed_decisions
    ]
    if refused:
        titles = ", ".join(t.title for t in refused)
        raise ApiProblem(
            422, "approve_not_allowed", f"these reviews do not allow approve: {titles}"
        )
    message = form.get("message")
    note = message.strip() if isinstance(message, str) and message.strip() else None
    outcomes = []
    for task in tasks:
        if task.id not in shown:
            outcomes.append(Outcome(task, False, "new since the page loaded: not approved"))
            continue
        if task.version != shown[task.id]:
            outcomes.append(Outcome(task, False, "changed since the page loaded: not approved"))
            continue
        try:
            await hub.engine.decide(viewer.principal, task.id, {"type": "approve", "message": note})
            outcomes.append(Outcome(task, True, "approved"))
        except HandrailError as exc:
            outcomes.append(Outcome(task, False, exc.message))
    status = 200 if all(o.ok for o in outcomes) else 207
    return await _page(request, viewer, batch_id, outcomes, status_code=status)
