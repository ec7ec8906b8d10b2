"""Humancheck's REST API (docs.humancheck.dev), under ``/compat/humancheck``.

A review is a Handrail review task. Its action is the tool call when the metadata names
one (``tool_name`` and ``tool_arguments``, as Humancheck's LangChain adapter sends), and
otherwise ``{task_type}({"proposed_action": ...})``; ``urgency`` is the risk tier. Ids are
Handrail task ids (strings). Keys go in ``Authorization: Bearer``, ``X-API-Key`` or HTTP
Basic (``http://name:KEY@host/compat/humancheck``). Deciding takes a reviewer's (or an
admin's) key: the key, not ``reviewer_id``, says who decided.

=======================  ===============================================
Handrail                 Humancheck ``status``
=======================  ===============================================
not yet terminal         ``pending``
verified (or disputed)   ``approved``, ``rejected`` (reject, respond) or
                         ``modified``, after the decision
expired, cancelled,      ``expired``, ``cancelled``, ``failed`` (no decision:
failed                   a Humancheck client keeps waiting, then gives up)
=======================  ===============================================
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from sqlalchemy import insert

from handrail import (
    Decision,
    DecisionType,
    Kind,
    Principal,
    Role,
    Status,
    Task,
    WaitTimeout,
)
from handrail.clock import utc
from handrail.errors import ValidationError
from handrail.ids import new_id

from ..auth import require
from ..deps import HubDep, PrincipalDep
from ..hub import Hub
from ..idempotency import parse_key
from ..problems import ApiProblem
from ..schemas import TaskId
from ..tables import feedback
from ._dialect import Failure, close_router, dialect_router
from ._shared import create_task, scan

__all__ = ["review_of", "router"]

PREFIX = "/compat/humancheck"
PENDING = frozenset(
    {
        Status.POSTED,
        Status.ESTIMATE_PENDING,
        Status.ASSIGNED,
        Status.SUBMITTED,
        Status.MANUAL_REVIEW,
    }
)
_DECIDED = frozenset({Status.VERIFIED, Status.DISPUTED})
_SHOWN = {DecisionType.APPROVE: "approve", DecisionType.MODIFY: "modify"}  # reject, respond
_STATUS_OF_DECISION = {"approve": "approved", "reject": "rejected", "modify": "modified"}
ReviewStatus = Literal[
    "pending", "approved", "rejected", "modified", "expired", "cancelled", "failed"
]


# ---------------------------------------------------------------- errors


def render(request: Request, failure: Failure) -> Response:
    """As Humancheck (a FastAPI app) answers: ``{"detail": message}``, and for a request
    that does not validate, 422 with FastAPI's list of errors: a 422 is only ever that
    list. An idempotency key used for another request is a conflict (409); the engine's
    other refusals of what it was sent are 400."""
    if failure.request_error is not None:
        errors = jsonable_encoder(failure.request_error.errors(), exclude={"input", "ctx", "url"})
        return JSONResponse({"detail": errors}, status_code=422)
    status = failure.status
    if failure.code == "idempotency_conflict":
        status = 409
    elif failure.code == "validation_error" or status == 422:
        status = 400
    body = {"detail": failure.message, **failure.context}
    if failure.errors:
        body["errors"] = failure.errors
    return JSONResponse(body, status_code=status, headers=failure.headers)


router = dialect_router(PREFIX, "compat: Humancheck", render)


# ---------------------------------------------------------------- shapes


def _tool_call(metadata: dict[str, JsonValue] | None) -> tuple[str, dict[str, JsonValue]] | None:
    """The tool call a review is about, when its metadata names one."""
    if not metadata:
        return None
    name, args = metadata.get("tool_name"), metadata.get("tool_arguments")
    if isinstance(name, str) and name.strip() and isinstance(args, dict):
        return name.strip(), args
    return None


def _proposed(task: Task) -> str:
    if isinstance(task.payload.get("proposed_action"), str):
        return str(task.payload["proposed_action"])
    assert task.action is not None
    return f"{task.action.name}({json.dumps(task.action.args, sort_keys=True)})"


def _is_tool_call(task: Task) -> bool:
    return task.action is not None and task.action.args.keys() != {"proposed_action"}


def _modified(task: Task, decision: Decision) -> str | None:
    if decision.type is not DecisionType.MODIFY or decision.args is None:
        return None
    if not _is_tool_call(task) and isinstance(decision.args.get("proposed_action"), str):
        return str(decision.args["proposed_action"])
    return json.dumps(decision.args, sort_keys=True)


def _when(value: datetime | None) -> str | None:
    return utc(value).isoformat() if value is not None else None


def decision_of(task: Task, decision: Decision) -> dict[str, Any]:
    kind = _SHOWN.get(decision.type, "reject")
    return {
        "id": task.id,
        "review_id": task.id,
        "reviewer_id": decision.reviewer_id,
        "reviewer_name": decision.reviewer_id,
        "decision_type": kind,
        "modified_action": _modified(task, decision),
        "notes": decision.message,
        "timestamp": _when(decision.decided_at),
    }


def _decided(task: Task) -> Decision | None:
    return task.decision if task.status in _DECIDED else None


def review_status(task: Task) -> str:
    decision = _decided(task)
    if decision is not None:
        return _STATUS_OF_DECISION[_SHOWN.get(decision.type, "reject")]
    if task.status in PENDING:
        return "pending"
    return task.status.value


def review_of(task: Task) -> dict[str, Any]:
    """A review task as Humancheck shows it, with its ``decision`` once there is one."""
    decision = _decided(task)
    framework = task.payload.get("framework")
    return {
        "id": task.id,
        "task_type": task.task_type,
        "proposed_action": _proposed(task),
        "agent_reasoning": task.agent_reasoning,
        "confidence_score": task.confidence,
        "urgency": task.risk_tier.value,
        "framework": framework if isinstance(framework, str) else None,
        "status": review_status(task),
        "metadata": task.metadata,
        "meta_data": task.metadata,  # what Humancheck's server itself calls it
        "created_at": _when(task.created_at),
        "updated_at": _when(task.updated_at),
        "decision": decision_of(task, decision) if decision is not None else None,
    }


async def _review(hub: Hub, principal: Principal, review_id: str) -> Task:
    task = await hub.engine.get(principal, review_id)
    if task.kind is not Kind.REVIEW:
        raise ApiProblem(404, "not_found", f"review {review_id!r} not found")
    return task


# ---------------------------------------------------------------- reviews


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_type: str = Field(min_length=1, max_length=100)
    proposed_action: str = Field(min_length=1, max_length=50_000)
    agent_reasoning: str | None = Field(default=None, max_length=50_000)
    # strict: a boolean (or a string) is no score, though pydantic would read false as 0.0
    confidence_score: float | None = Field(default=None, ge=0, le=1, strict=True)
    urgency: Literal["low", "medium", "high", "critical"] = "medium"
    framework: str | None = Field(default=None, max_length=100)
    metadata: dict[str, JsonValue] | None = None
    organization_id: int | str | None = Field(
        default=None, description="ignored: the API key says which organisation"
    )
    agent_id: int | str | None = Field(default=None, description="ignored: the key says who")
    blocking: bool = False
    timeout_seconds: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=300,
        description="how long a blocking request waits (default and cap: the server's)",
    )


def _allowed(metadata: dict[str, JsonValue] | None) -> list[str] | None:
    wanted = (metadata or {}).get("allowed_decisions")
    if not isinstance(wanted, list) or not wanted:
        return None
    names = {"approve": "approve", "reject": "reject", "edit": "modify", "modify": "modify"}
    picked = [names[w] for w in wanted if isinstance(w, str) and w in names]
    return list(dict.fromkeys(picked)) or None


def _spec(body: ReviewIn, key: str) -> dict[str, Any]:
    call = _tool_call(body.metadata)
    name, args = call if call else (body.task_type, {"proposed_action": body.proposed_action})
    title = body.proposed_action if len(body.proposed_action) <= 500 else body.proposed_action[:499]
    spec: dict[str, Any] = {
        "kind": Kind.REVIEW,
        "task_type": body.task_type,
        "title": title,
        "action": {"name": name[:200], "args": args},
        "payload": {"proposed_action": body.proposed_action, "framework": body.framework},
        "agent_reasoning": body.agent_reasoning,
        "confidence": body.confidence_score,
        "risk_tier": body.urgency,
        "metadata": body.metadata or {},
        "idempotency_key": key,
    }
    allowed = _allowed(body.metadata)
    if allowed:
        spec["allowed_decisions"] = allowed
    return spec


@router.post("/reviews", status_code=201)
async def create_review(
    body: ReviewIn,
    hub: HubDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> JSONResponse:
    """Ask for a review. With ``blocking``, answer once it is decided (with ``decision``),
    or 408 after the wait (the review stays pending: poll ``/reviews/{id}/decision``)."""
    require(principal, Role.REQUESTER)
    key = parse_key(idempotency_key) or f"humancheck:{new_id()}"
    task, replayed = await create_task(hub, principal, _spec(body, key))
    if body.blocking and not task.terminal:
        cap = hub.settings.wait_max_seconds
        timeout = min(body.timeout_seconds or cap, cap)
        try:
            task = await hub.engine.wait(principal, task.id, timeout)
        except WaitTimeout:
            raise ApiProblem(
                408,
                "wait_timeout",
                f"no decision within {timeout:g} s; the review is still pending",
                review_id=task.id,
            ) from None
    return JSONResponse(review_of(task), status_code=200 if replayed else 201)


_FILTER: dict[str, frozenset[Status]] = {
    "pending": PENDING,
    "approved": _DECIDED,
    "rejected": _DECIDED,
    "modified": _DECIDED,
    "expired": frozenset({Status.EXPIRED}),
    "cancelled": frozenset({Status.CANCELLED}),
    "failed": frozenset({Status.FAILED}),
}


@router.get("/reviews")
async def list_reviews(
    hub: HubDep,
    principal: PrincipalDep,
    status: ReviewStatus | None = None,
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    framework: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Reviews, newest first, a page at a time, with the total."""
    skip = (page - 1) * page_size
    shown: list[dict[str, Any]] = []
    total = 0
    reviews = scan(
        hub,
        principal,
        statuses=_FILTER[status] if status else None,
        kind=Kind.REVIEW,
        task_type=task_type,
        newest_first=True,
    )
    async for task in reviews:
        if status is not None and review_status(task) != status:
            continue
        if framework is not None and task.payload.get("framework") != framework:
            continue
        if skip <= total < skip + page_size:
            shown.append(review_of(task))
        total += 1
    return {"reviews": shown, "total": total, "page": page, "page_size": page_size}


@router.get("/reviews/{review_id}")
async def get_review(review_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    return review_of(await _review(hub, principal, review_id))


@router.get("/reviews/{review_id}/decision")
async def get_decision(review_id: TaskId, hub: HubDep, principal: PrincipalDep) -> Any:
    """The decision, or ``null`` while there is none."""
    task = await _review(hub, principal, review_id)
    decision = _decided(task)
    return decision_of(task, decision) if decision is not None else None


class DecideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision_type: Literal["approve", "reject", "modify"]
    modified_action: str | None = Field(default=None, max_length=50_000)
    notes: str | None = Field(default=None, max_length=10_000)
    reviewer_id: int | str | None = Field(
        default=None, description="ignored: the API key says who decides"
    )
    reviewer_name: str | None = Field(default=None, description="ignored, as reviewer_id")


def _decision(task: Task, body: DecideIn) -> Decision:
    notes = body.notes.strip() if body.notes and body.notes.strip() else None
    if body.decision_type == "approve":
        return Decision.approve(notes)
    if body.decision_type == "reject":
        return Decision.reject(notes or "rejected")
    if not body.modified_action or not body.modified_action.strip():
        raise ValidationError.at("$.modified_action", "a modify decision needs it")
    if not _is_tool_call(task):
        return Decision.modify({"proposed_action": body.modified_action}, notes)
    try:
        args = json.loads(body.modified_action)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise ValidationError.at(
            "$.modified_action",
            "this review is a tool call: send its new arguments as a JSON object",
        )
    return Decision.modify(args, notes)


@router.post("/reviews/{review_id}/decide")
async def decide(
    review_id: TaskId, body: DecideIn, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Decide a review: a reviewer's or an admin's key; 409 once another decision is in."""
    if not principal.has(Role.REVIEWER):
        raise ApiProblem(403, "forbidden", "deciding a review needs a reviewer's (or admin's) key")
    task = await _review(hub, principal, review_id)
    decided = await hub.engine.decide(principal, task.id, _decision(task, body))
    mine = decided.assignment_of(principal.id)
    assert mine is not None and mine.output is not None
    return decision_of(decided, Decision.model_validate(mine.output))


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=10_000)


@router.post("/reviews/{review_id}/feedback", status_code=201)
async def give_feedback(
    review_id: TaskId, body: FeedbackIn, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Rate a review's handling (1 to 5) and comment."""
    require(principal, Role.REQUESTER)
    task = await _review(hub, principal, review_id)
    feedback_id, now = new_id(), hub.clock.now()
    row = {
        "id": feedback_id,
        "org_id": principal.org_id,
        "task_id": task.id,
        "rating": body.rating,
        "comment": body.comment,
        "created_by": principal.id,
        "created_at": now,
    }
    await hub.store.run(lambda c: c.execute(insert(feedback), [row]))
    return {
        "id": feedback_id,
        "review_id": task.id,
        "rating": body.rating,
        "comment": body.comment,
        "timestamp": _when(now),
    }


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy", "service": "humancheck"}


close_router(router, render)
