"""HumanOps' operators: registration, browsing, estimates, proof, earnings, payouts."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from handrail import Principal, Role, Status
from handrail.errors import NotFound
from handrail.ids import new_id
from handrail.ledger import Account, PayoutStatus, PostingKind

from ...access import permit
from ...deps import HubDep, PrincipalDep
from ...hub import Hub
from ...idempotency import parse_key
from ...keys import create_key
from ...modes import organisation
from ...problems import ApiProblem
from ...schemas import TaskId
from .._shared import amount, money
from ._common import (
    USD,
    Location,
    TaskType,
    minutes_of,
    reward_of,
    router,
    status_of,
    when,
)

# ---------------------------------------------------------------- operators


async def _operator_principal(
    request: Request,
    hub: HubDep,
    operator_id: Annotated[str | None, Header(alias="X-Operator-Id", max_length=200)] = None,
) -> Principal:
    """An operator is a reviewer key: in ``X-API-Key``, ``Authorization`` or, where HumanOps
    clients send the operator's id, ``X-Operator-Id``."""
    if (
        operator_id
        and not request.headers.get("authorization")
        and not request.headers.get("x-api-key")
    ):
        principal = (await hub.auth.check(operator_id.strip())).as_principal()
    else:
        principal = await hub.auth.principal(request)
    permit(request, principal)  # an operator's (reviewer) key, or an admin's
    return principal


OperatorDep = Annotated[Principal, Depends(_operator_principal)]


class OperatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    location: Location | None = None
    skills: list[TaskType] = Field(default_factory=list)


@router.post("/operator/register", status_code=201)
async def register_operator(
    body: OperatorIn, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """An admin registers an operator: a reviewer key (shown once, as ``api_key``) and a
    worker profile taking the ``skills`` task types (any, when empty)."""
    if not principal.has(Role.ADMIN):
        raise ApiProblem(403, "forbidden", "an admin registers operators in Handrail")
    operator_id = f"op_{new_id().replace('-', '')[-12:]}"
    now = hub.clock.now()
    made = await hub.store.run(
        lambda c: create_key(
            c,
            org_id=organisation(principal.org_id),
            role=Role.REVIEWER,
            now=now,
            sandbox=principal.sandbox,  # a sandbox admin's operator works in the sandbox
            principal=operator_id,
            name=body.name,
        )
    )
    await hub.engine.put_worker(principal, {"id": operator_id, "skills": body.skills})
    return {
        "operator_id": operator_id,
        "name": body.name,
        "kyc_status": "VERIFIED",
        "api_key": made.key,
        "message": "Save this API key — it won't be shown again.",
    }


@router.get("/operator/tasks")
async def browse(
    hub: HubDep,
    operator: OperatorDep,
    task_type: TaskType | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=400)] = 0,
) -> dict[str, Any]:
    """Tasks open to this operator, soonest deadline first."""
    open_ = await hub.engine.queue(operator, task_type=task_type, limit=500)
    page = open_[offset : offset + limit]
    data = [
        {
            "task_id": t.id,
            "title": t.title,
            "description": t.instructions,
            "task_type": t.task_type,
            "location": t.payload.get("location"),
            "reward_usd": reward_of(t),
            "deadline": when(t.expires_at),
            "proof_requirements": t.payload.get("proof_requirements", []),
            "proof_type": t.payload.get("proof_type"),
            "requires_estimate": t.require_estimate,
            "created_at": when(t.created_at),
        }
        for t in page
    ]
    return {"data": data, "pagination": {"limit": limit, "offset": offset, "total": len(open_)}}


class Estimate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    estimate_days: int = Field(default=0, ge=0, le=30)
    estimate_hours: int = Field(default=0, ge=0, le=23 * 31)
    estimate_minutes: int = Field(default=0, ge=0, le=59 * 24 * 31)
    estimate_note: str | None = Field(default=None, max_length=2_000)


@router.post("/operator/tasks/{task_id}/accept")
async def accept(
    task_id: TaskId, hub: HubDep, operator: OperatorDep, body: Estimate | None = None
) -> dict[str, Any]:
    """Claim a task with a time estimate (the agent then approves it); a task that wants
    no estimate is simply taken."""
    body = body or Estimate()
    seconds = ((body.estimate_days * 24 + body.estimate_hours) * 60 + body.estimate_minutes) * 60
    task = await hub.engine.get(operator, task_id)
    if task.require_estimate:
        task = await hub.engine.offer_estimate(
            operator, task_id, eta_seconds=seconds or None, note=body.estimate_note
        )
        claimed = task.estimate.offered_at if task.estimate else None
    else:
        task = await hub.engine.claim(operator, task_id)
        claimed = task.reached_at.get(Status.ASSIGNED)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "estimate_minutes": minutes_of(task),
        "claimed_at": when(claimed),
        "approval_deadline": when(task.expires_at) if task.require_estimate else None,
    }


@router.post("/operator/tasks/{task_id}/withdraw-claim")
async def withdraw(task_id: TaskId, hub: HubDep, operator: OperatorDep) -> dict[str, Any]:
    """Take back an estimate (or give back a task held without one)."""
    task = await hub.engine.get(operator, task_id)
    if task.status is Status.ESTIMATE_PENDING:
        task = await hub.engine.withdraw_estimate(operator, task_id, "withdrawn by the operator")
    else:
        task = await hub.engine.release(operator, task_id, "withdrawn by the operator")
    return {"task_id": task.id, "status": status_of(task)}


class Proof(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photos: list[str] | None = None
    notes: str | None = None
    confirmation_text: str | None = None
    reference_url: str | None = None
    encrypted_credential: dict[str, JsonValue] | None = None


@router.post("/operator/tasks/{task_id}/submit")
async def submit(
    task_id: TaskId, body: Proof, hub: HubDep, operator: OperatorDep
) -> dict[str, Any]:
    """Submit proof; verification runs at once (the status says how it went)."""
    task = await hub.engine.submit(operator, task_id, body.model_dump(exclude_none=True))
    messages = {
        "COMPLETED": "Proof verified. Task completed.",
        "MANUAL_REVIEW": "Proof submitted. It is waiting for a manual review.",
        "DISPUTED": "Proof rejected by verification.",
    }
    return {
        "task_id": task.id,
        "status": status_of(task),
        "submitted_at": when(task.reached_at.get(Status.SUBMITTED)),
        "message": messages.get(status_of(task), "Proof submitted."),
    }


async def _recent(hub: Hub, operator: Principal, count: int = 10) -> list[dict[str, Any]]:
    """The operator's latest paid tasks, from its earnings account."""
    account = Account.pending(operator.org_id, operator.id, USD)
    paid: list[str] = []
    after = None
    while True:
        page = await hub.ledger.entries(operator, account, after=after, limit=500)
        paid += [
            e.posting_id.removeprefix("resolve:")
            for e in page.items
            if e.kind is PostingKind.RESOLVE and e.amount > 0
        ]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    recent = []
    for task_id in reversed(list(dict.fromkeys(reversed(paid)))[:count]):
        try:
            task = await hub.engine.get(operator, task_id)
        except NotFound:
            continue
        recent.append(
            {
                "task_id": task.id,
                "title": task.title,
                "reward_usd": reward_of(task),
                "status": status_of(task),
                "completed_at": when(task.reached_at.get(Status.VERIFIED)),
            }
        )
    return recent


@router.get("/operator/earnings")
async def earnings(hub: HubDep, operator: OperatorDep) -> dict[str, Any]:
    mine = await hub.ledger.earnings(operator, USD)
    return {
        "pending_balance": amount(mine.pending),
        "available_balance": amount(mine.available),
        "total_earned": amount(mine.total),
        "currency": "USD",
        "recent_tasks": await _recent(hub, operator),
    }


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: Decimal = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    method: Literal["usdc"] = "usdc"
    wallet_address: str | None = Field(default=None, max_length=200)
    chain: Literal["base"] = "base"


_PAYOUT_STATUS = {
    PayoutStatus.PENDING: "PENDING_ONCHAIN",
    PayoutStatus.SENT: "COMPLETED",
    PayoutStatus.FAILED: "FAILED",
}


@router.post("/operator/payout")
async def payout(
    body: PayoutIn,
    hub: HubDep,
    operator: OperatorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> dict[str, Any]:
    """Pay out available earnings through the payout rail (less its fee). Send an
    ``Idempotency-Key``: the same key again returns the same payout."""
    key = parse_key(idempotency_key) or new_id()
    record = await hub.ledger.request_payout(
        operator, money(body.amount_usd, USD, "$.amount_usd"), key=key
    )
    return {
        "payout_id": record.id,
        "amount_usd": amount(record.amount),
        "gas_fee_usd": amount(record.fee),
        "net_amount_usd": amount(record.net),
        "to_address": body.wallet_address,
        "chain": body.chain,
        "status": _PAYOUT_STATUS[record.status],
        "tx_hash": record.reference,
        "message": {
            PayoutStatus.PENDING: "Payout submitted. Awaiting confirmation.",
            PayoutStatus.SENT: "Payout sent.",
            PayoutStatus.FAILED: f"Payout failed: {record.failure}",
        }[record.status],
    }


@router.get("/operator/payout/status/{payout_id}")
async def payout_status(payout_id: TaskId, hub: HubDep, operator: OperatorDep) -> dict[str, Any]:
    for record in await hub.ledger.payouts(operator):
        if record.id == payout_id:
            return {
                "payout_id": record.id,
                "status": _PAYOUT_STATUS[record.status].lower(),
                "amount_usd": amount(record.amount),
            }
    raise NotFound("payout", payout_id)
