"""Workers (admins): each profile with what the engine learned of the worker (answers,
reliability, agreement, gold checks, time on task) per task type; a worker without a
profile is found by id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from handrail import NotFound, Role
from handrail.workers import WorkerProfile, WorkerStats

from ..._nav import add_nav
from ..._render import render
from ..._route import WebRoute
from ..._viewer import ViewerDep, hub_of
from ._common import need

__all__ = ["Summary", "router", "summary_of"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Workers", "/org/workers", Role.ADMIN, order=60)

WorkerId = Annotated[str, Path(min_length=1, max_length=200)]


@dataclass(frozen=True)
class Summary:
    """A worker's stats over every task type."""

    answers: int
    reliability: float | None  # the answer-weighted mean of the per-type reliabilities
    gold_correct: int
    gold_total: int
    agreed: int
    disagreed: int


def summary_of(stats: list[WorkerStats]) -> Summary:
    answers = sum(s.answers for s in stats)
    weighted = sum(s.reliability * s.answers for s in stats)
    return Summary(
        answers=answers,
        reliability=weighted / answers if answers else None,
        gold_correct=sum(s.gold_correct for s in stats),
        gold_total=sum(s.gold_total for s in stats),
        agreed=sum(s.agreed for s in stats),
        disagreed=sum(s.disagreed for s in stats),
    )


@router.get("/org/workers")
async def worker_list(request: Request, viewer: ViewerDep) -> Response:
    need(viewer, Role.ADMIN)
    engine = hub_of(request).engine
    profiles = await engine.list_workers(viewer.principal)
    rows = [(p, summary_of(await engine.worker_stats(viewer.principal, p.id))) for p in profiles]
    return render(request, "org/workers.html", {"rows": rows})


@router.get("/org/workers/find")
async def find_worker(
    viewer: ViewerDep, worker_id: Annotated[str, Query(min_length=1, max_length=200)]
) -> Response:
    need(viewer, Role.ADMIN)
    return RedirectResponse(f"/org/workers/{quote(worker_id.strip(), safe='')}", status_code=303)


@router.get("/org/workers/{worker_id}")
async def worker_detail(request: Request, worker_id: WorkerId, viewer: ViewerDep) -> Response:
    need(viewer, Role.ADMIN)
    engine = hub_of(request).engine
    profile: WorkerProfile | None
    try:
        profile = await engine.get_worker(viewer.principal, worker_id)
    except NotFound:
        profile = None
    stats = await engine.worker_stats(viewer.principal, worker_id)
    if profile is None and not stats:
        raise NotFound("worker", worker_id)
    return render(
        request,
        "org/worker.html",
        {"worker_id": worker_id, "profile": profile, "stats": stats, "summary": summary_of(stats)},
    )
