"""One task: its context, the agent's reasoning, the SLA, attachments, history, policy and
quorum; and the reviewer's forms (a decision on a review, an answer to a judgment).

Every decision and answer goes through the engine as the signed-in principal, so the
policy's checks (who may decide, allowed decisions, argument schemas, re-checked edits)
apply exactly as over the API. Invalid input re-renders the page with the errors (422)
and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from handrail import Decision, DecisionType, HandrailError, Kind, Status, Task
from handrail.errors import ValidationError, ValidationIssue
from handrail.validation import validate_instance

from ...problems import ApiProblem, status_of
from ...tables import uploads
from .._render import render
from .._route import WebRoute
from .._viewer import Viewer, ViewerDep, hub_of

router = APIRouter(route_class=WebRoute, include_in_schema=False)

TaskId = Annotated[str, Path(max_length=64)]
MAX_JSON = 512 * 1024


@dataclass(frozen=True)
class Quorum:
    needed: int
    approvals: list[str]
    rejections: list[str]
    veto: bool


def quorum_of(task: Task) -> Quorum:
    """The votes so far of a review: who approved, who rejected."""
    approvals: list[str] = []
    rejections: list[str] = []
    for held in task.answers():
        try:
            decision = Decision.model_validate(held.output)
        except ValueError:
            continue
        (approvals if decision.is_approval else rejections).append(held.worker_id)
    policy = task.policy
    return Quorum(
        policy.quorum if policy else 1, approvals, rejections, policy.veto if policy else True
    )


def _issues(exc: HandrailError) -> list[ValidationIssue]:
    return list(exc.errors) if isinstance(exc, ValidationError) else []


async def task_page(
    request: Request,
    viewer: Viewer,
    task_id: str,
    *,
    error: str | None = None,
    issues: list[ValidationIssue] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    hub = hub_of(request)
    task = await hub.engine.get(viewer.principal, task_id)
    history = await hub.engine.history(viewer.principal, task_id)
    query = (
        select(uploads)
        .where(uploads.c.org_id == viewer.principal.org_id, uploads.c.task_id == task_id)
        .order_by(uploads.c.created_at)
    )
    files = await hub.store.run(lambda c: [r._mapping for r in c.execute(query)], readonly=True)
    mine = task.assignment_of(viewer.principal.id)
    can_act = open_to(task, viewer)
    original_args = task.action.args if task.action else {}
    return render(
        request,
        "task.html",
        {
            "task": task,
            "history": history,
            "files": files,
            "mine": mine,
            "can_act": can_act,
            "allowed": [d.value for d in task.allowed_decisions],
            "quorum": quorum_of(task) if task.kind is Kind.REVIEW else None,
            "decision": task.decision,
            "error": error,
            "issues": issues or [],
            "form": form or {},
            "args_text": (form or {}).get("args_json") or json.dumps(original_args, indent=2),
            "output_text": (form or {}).get("output_json", ""),
            "done": request.query_params.get("done"),
        },
        status_code=status_code,
    )


def open_to(task: Task, viewer: Viewer) -> bool:
    """Whether the viewer could decide or answer the task now (the engine has the last
    word): a reviewer, the task open, a slot free or already held by them."""
    mine = task.assignment_of(viewer.principal.id)
    return (
        viewer.is_reviewer
        and task.status in (Status.POSTED, Status.ASSIGNED)
        and (task.open_slots > 0 or (mine is not None and mine.holds_slot))
    )


@router.get("/tasks/{task_id}")
async def show_task(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    return await task_page(request, viewer, task_id)


def _text(form: Any, name: str, limit: int = MAX_JSON) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise ValidationError.at(name, f"is longer than {limit} characters")
    return value


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError.at(where, f"is not valid JSON: {exc}") from None


def _decision(form: Any) -> dict[str, Any]:
    kind = _text(form, "decision", 20)
    try:
        decision_type = DecisionType(kind)
    except ValueError:
        raise ValidationError.at("$.type", "choose approve, modify, reject or respond") from None
    message = _text(form, "message", 10_000).strip() or None
    body: dict[str, Any] = {"type": decision_type.value, "message": message}
    if decision_type is DecisionType.MODIFY:
        args = _json(_text(form, "args_json"), "$.args")
        if not isinstance(args, dict):
            raise ValidationError.at("$.args", "must be a JSON object")
        body["args"] = args
    elif decision_type in (DecisionType.REJECT, DecisionType.RESPOND) and message is None:
        raise ValidationError.at("$.message", f"say why: a {decision_type.value} needs a message")
    return body


async def _refused(
    request: Request, viewer: Viewer, task_id: str, exc: HandrailError, form: dict[str, str]
) -> Response:
    """The page again with the engine's refusal: a clear message, never a 500."""
    status = status_of(exc)
    if status == 404:
        raise exc
    return await task_page(
        request,
        viewer,
        task_id,
        error=exc.message,
        issues=_issues(exc),
        form=form,
        status_code=status,
    )


def _kept(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


@router.post("/tasks/{task_id}/decision")
async def decide(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    """Approve, modify, reject or respond, as the signed-in reviewer."""
    hub = hub_of(request)
    form = await request.form()
    try:
        body = _decision(form)
        await hub.engine.decide(viewer.principal, task_id, body)
    except HandrailError as exc:
        return await _refused(request, viewer, task_id, exc, _kept(form))
    back = form.get("back")
    if isinstance(back, str) and back.startswith("/batches/") and "//" not in back:
        return RedirectResponse(f"{back}?done=decided", status_code=303)
    return RedirectResponse(f"/tasks/{task_id}?done=decided", status_code=303)


@router.post("/tasks/{task_id}/answer")
async def answer(request: Request, task_id: TaskId, viewer: ViewerDep) -> Response:
    """Answer a judgment: checked against ``output_schema`` before anything is claimed, so
    an answer that does not fit changes nothing."""
    hub = hub_of(request)
    form = await request.form()
    try:
        task = await hub.engine.get(viewer.principal, task_id)
        if task.kind is not Kind.JUDGMENT:
            raise ValidationError.at("$.kind", "this is a review: decide it instead")
        output = _json(_text(form, "output_json"), "$.output")
        validate_instance(output, task.output_schema, "$.output", "the answer does not fit")
        mine = task.assignment_of(viewer.principal.id)
        if mine is None or not mine.holds_slot:
            await hub.engine.claim(viewer.principal, task_id)
        await hub.engine.submit(viewer.principal, task_id, output)
    except HandrailError as exc:
        return await _refused(request, viewer, task_id, exc, _kept(form))
    return RedirectResponse(f"/tasks/{task_id}?done=answered", status_code=303)


@router.get("/tasks/{task_id}/files/{upload_id}")
async def attachment(
    request: Request,
    task_id: TaskId,
    upload_id: Annotated[str, Path(max_length=64)],
    viewer: ViewerDep,
) -> Response:
    """An attachment of the task, as a download (never rendered in the page's origin)."""
    hub = hub_of(request)
    await hub.engine.get(viewer.principal, task_id)  # 404 for another organisation's task
    org = viewer.principal.org_id
    query = select(uploads).where(
        uploads.c.id == upload_id, uploads.c.org_id == org, uploads.c.task_id == task_id
    )
    row = await hub.store.run(lambda c: c.execute(query).first(), readonly=True)
    data = await hub.blobs.get(f"{org}-{upload_id}") if row is not None else None
    if row is None or data is None:
        raise ApiProblem(404, "not_found", f"no attachment {upload_id!r} on this task")
    name = "".join(ch for ch in row.filename if ch.isalnum() or ch in "._- ") or "attachment"
    return Response(
        data,
        media_type=row.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": row.sha256,
        },
    )


__all__ = ["Quorum", "quorum_of", "router", "task_page"]
