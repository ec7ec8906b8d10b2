"""HumanOps' REST API (humanops.io/docs), under ``/compat/humanops/api/v1``.

A HumanOps task is a Handrail judgment task whose answer is the proof (``photos``,
``notes``, ``confirmation_text``, ``reference_url``, ``encrypted_credential``), checked by
Handrail's verification pipeline (HumanOps' "AI Guardian"). Live tasks want an estimate
first (an operator accepts with one, the agent approves it). Sandbox tasks do not: the
simulated operator takes and answers them at once, and, as in HumanOps, they escrow
nothing. Agents send ``X-API-Key``; operators send their reviewer key in ``X-API-Key``,
``Authorization: Bearer`` or ``X-Operator-Id``. Amounts are US dollars; a live task's
escrow is the ledger's hold (reward + platform fee).

====================  ==================
Handrail status       HumanOps status
====================  ==================
posted                PENDING
estimate_pending      ESTIMATE_PENDING
assigned              ACCEPTED
submitted             SUBMITTED
manual_review         MANUAL_REVIEW
verified              COMPLETED
failed, disputed      DISPUTED
cancelled             CANCELLED
expired               EXPIRED
====================  ==================
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from handrail import Kind, Principal, Role, Status, Task
from handrail._ids import new_id
from handrail.clock import utc
from handrail.errors import InvalidTransition, NotFound, ValidationError
from handrail.ledger import Account, PayoutStatus, PostingKind
from handrail.models import MAX_SLA_SECONDS
from handrail.money import Currency

from ..auth import RateLimiter, require
from ..deps import HubDep, PrincipalDep
from ..hub import Hub
from ..keys import create_key
from ..problems import ApiProblem
from ..proofs import ProofType, proof_schema
from ..schemas import TaskId
from ..webhooks import Outbound
from ._dialect import Failure, close_router, dialect_router
from ._shared import Callback, amount, create_task, hold_of, money, scan

__all__ = ["SCHEME", "HumanOpsScheme", "router", "status_of", "to_task"]

PREFIX = "/compat/humanops/api/v1"
DIALECT = "humanops"
USD = Currency.USD

STATUS: dict[Status, str] = {
    Status.POSTED: "PENDING",
    Status.ESTIMATE_PENDING: "ESTIMATE_PENDING",
    Status.ASSIGNED: "ACCEPTED",
    Status.SUBMITTED: "SUBMITTED",
    Status.MANUAL_REVIEW: "MANUAL_REVIEW",
    Status.VERIFIED: "COMPLETED",
    Status.FAILED: "DISPUTED",
    Status.DISPUTED: "DISPUTED",
    Status.CANCELLED: "CANCELLED",
    Status.EXPIRED: "EXPIRED",
}
HumanOpsStatus = Literal[
    "PENDING",
    "ESTIMATE_PENDING",
    "ACCEPTED",
    "IN_PROGRESS",
    "SUBMITTED",
    "VERIFIED",
    "MANUAL_REVIEW",
    "COMPLETED",
    "DISPUTED",
    "CANCELLED",
    "EXPIRED",
]
_BY_STATUS: dict[str, frozenset[Status]] = {
    name: frozenset(s for s, shown in STATUS.items() if shown == name) for name in STATUS.values()
}
_BY_STATUS["IN_PROGRESS"] = _BY_STATUS["ACCEPTED"]
_BY_STATUS["VERIFIED"] = _BY_STATUS["COMPLETED"]  # transient in HumanOps: it is COMPLETED here

PHYSICAL = frozenset({"VERIFICATION", "PHOTO", "DELIVERY", "INSPECTION"})
DIGITAL = frozenset(
    {"CAPTCHA_SOLVING", "FORM_FILLING", "BROWSER_INTERACTION", "CONTENT_REVIEW", "DATA_VALIDATION"}
)
CREDENTIAL = frozenset(
    {"ACCOUNT_CREATION", "API_KEY_PROCUREMENT", "PHONE_VERIFICATION", "SUBSCRIPTION_SETUP"}
)
TaskType = Literal[
    "VERIFICATION",
    "PHOTO",
    "DELIVERY",
    "INSPECTION",
    "CAPTCHA_SOLVING",
    "FORM_FILLING",
    "BROWSER_INTERACTION",
    "CONTENT_REVIEW",
    "DATA_VALIDATION",
    "ACCOUNT_CREATION",
    "API_KEY_PROCUREMENT",
    "PHONE_VERIFICATION",
    "SUBSCRIPTION_SETUP",
]
SANDBOX_NOTICE = (
    "This is a simulated task. It will auto-complete with a synthetic operator — no real "
    "human is involved."
)
SANDBOX_DONE = (
    "This task was completed by a simulated operator with synthetic proof. The operator, "
    "proof, and verification are all generated."
)


def status_of(task: Task) -> str:
    return STATUS[task.status]


def _when(value: datetime | None) -> str | None:
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


# ---------------------------------------------------------------- errors


def render(request: Request, failure: Failure) -> Response:
    """``{"error": message, "details": {...}}``; bad input is 400."""
    status = 400 if failure.code == "validation_error" else failure.status
    details: dict[str, Any] = {"code": failure.code, **failure.context}
    if failure.errors:
        details["errors"] = failure.errors
    body = {"error": failure.message, "details": details}
    return JSONResponse(body, status_code=status, headers=failure.headers)


router = dialect_router(PREFIX, "compat: HumanOps", render)


# ---------------------------------------------------------------- proof


def _proof_type(task_type: str, given: ProofType | None) -> ProofType:
    if given:
        return given
    if task_type in CREDENTIAL:
        return "ARTIFACT"
    if task_type in ("CAPTCHA_SOLVING", "BROWSER_INTERACTION"):
        return "SCREENSHOT"
    if task_type in DIGITAL:
        return "CONFIRMATION"
    return "PHOTO"


# ---------------------------------------------------------------- tasks as HumanOps shows them


def _operator(task: Task) -> dict[str, Any] | None:
    holder = next((a for a in reversed(task.assignments) if a.holds_slot), None)
    worker = holder.worker_id if holder else task.estimate.worker_id if task.estimate else None
    return {"id": worker, "name": worker, "rating": None} if worker else None


def _guardian(task: Task) -> dict[str, Any] | None:
    check = task.verification
    if check is None:
        return None
    decision = {"verified": "APPROVE", "failed": "REJECT"}.get(check.outcome, "MANUAL_REVIEW")
    if task.status is Status.VERIFIED:
        decision = "APPROVE"  # passed out of manual review
    elif task.status is Status.FAILED:
        decision = "REJECT"
    reasons = "; ".join(check.reasons) or "All proof requirements met."
    return {"decision": decision, "confidence": round(check.score), "reasoning": reasons}


def _proof(task: Task) -> dict[str, Any] | None:
    answer = next((a for a in reversed(task.assignments) if a.output is not None), None)
    if answer is None or not isinstance(answer.output, dict):
        return None
    return {**answer.output, "submittedAt": _when(answer.submitted_at)}


def reward_of(task: Task) -> float | int:
    """The reward: held in escrow, or for a sandbox task (which holds nothing) as posted."""
    if task.payout is not None:
        return amount(task.payout)
    nominal = task.payload.get("reward_usd")
    return nominal if isinstance(nominal, int | float) else 0


def summary_of(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "title": task.title,
        "status": status_of(task),
        "task_type": task.task_type,
        "reward_usd": reward_of(task),
        "operator": _operator(task),
        "created_at": _when(task.created_at),
        "deadline": _when(task.expires_at),
    }


def to_task(task: Task, fee: Any = None) -> dict[str, Any]:
    """A task with its proof, verification ("guardian") result and operator."""
    reached = task.reached_at
    shown = {
        **summary_of(task),
        "description": task.instructions,
        "location": task.payload.get("location"),
        "platform_fee_usd": fee,
        "proof_requirements": task.payload.get("proof_requirements", []),
        "proof_type": task.payload.get("proof_type"),
        "task_domain": task.payload.get("task_domain"),
        "digital_instructions": task.payload.get("digital_instructions"),
        "proof": _proof(task),
        "guardian_result": _guardian(task),
        "callback_url": task.callback_url,
        "estimate_minutes": _minutes(task),
        "accepted_at": _when(reached.get(Status.ASSIGNED)),
        "submitted_at": _when(reached.get(Status.SUBMITTED)),
        "verified_at": _when(reached.get(Status.VERIFIED)),
        "completed_at": _when(reached.get(Status.VERIFIED)),
        "failure_reason": task.failure_reason,
    }
    if task.sandbox:
        shown["sandbox"] = True
        shown["sandbox_notice"] = SANDBOX_DONE if task.terminal else SANDBOX_NOTICE
    return shown


def _minutes(task: Task) -> int | None:
    offer = task.estimate
    if offer is None or offer.eta_seconds is None:
        return None
    return math.ceil(offer.eta_seconds / 60)


async def _fee(hub: Hub, task: Task) -> float | int:
    hold = await hold_of(hub, task)
    return amount(hold.fee) if hold is not None else 0


async def _task(hub: Hub, principal: Principal, task_id: str) -> Task:
    return await hub.engine.get(principal, task_id)


# ---------------------------------------------------------------- agents


def _registrations(request: Request) -> RateLimiter:
    """Registrations per client address: 20 an hour (HumanOps' limit), per server."""
    state = request.app.state
    if not hasattr(state, "humanops_registrations"):
        state.humanops_registrations = RateLimiter(rate=20 / 3600, burst=20)
    limiter: RateLimiter = state.humanops_registrations
    return limiter


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    company: str | None = Field(default=None, max_length=200)


@router.post("/agents/register", status_code=201)
async def register_agent(request: Request, body: RegisterIn, hub: HubDep) -> dict[str, Any]:
    """A new agent: its own organisation and a sandbox key (shown once), whose tasks a
    simulated operator completes. An admin issues live keys (``handrail keys create``)."""
    if not hub.settings.compat_open_registration:
        raise ApiProblem(403, "forbidden", "registration is closed here: ask for a key")
    address = request.client.host if request.client else "unknown"
    wait = _registrations(request).take(address)
    if wait:
        raise ApiProblem(
            429, "rate_limited", "too many registrations", {"Retry-After": str(math.ceil(wait))}
        )
    org = f"agent-{new_id()}"
    now = hub.clock.now()
    made = await hub.store.run(
        lambda c: create_key(
            c,
            org_id=org,
            role=Role.REQUESTER,
            now=now,
            sandbox=True,
            principal=body.name.strip(),
            name=body.name.strip(),
        )
    )
    if hub.settings.run_background:
        hub.ensure_sandbox(org)
    return {
        "agent_id": org,
        "api_key": made.key,
        "tier": "SANDBOX",
        "verification_required": False,
        "sandbox_info": {
            "what": "Your tasks complete with a simulated operator and synthetic proof. "
            "No real humans are involved; deposits are sandbox credit.",
            "why": "Sandbox mode lets you test your whole integration first.",
            "how_to_upgrade": "Ask the server's administrator for a live key.",
            "limits": None,
        },
        "message": "Save this API key — it won't be shown again.",
    }


def _tier(principal: Principal) -> str:
    return "SANDBOX" if principal.sandbox else "STANDARD"


@router.get("/agents/balance")
async def balance(hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    held = await hub.ledger.balance(principal, USD)
    return {
        "deposit_balance": amount(held.available),
        "escrow_balance": amount(held.held),
        "currency": "USD",
        "tier": _tier(principal),
    }


class UsdcDeposit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tx_hash: str = Field(min_length=1, max_length=200)
    amount_usdc: Decimal = Field(ge=5, le=10_000, allow_inf_nan=False)
    chain: Literal["base"] = "base"


@router.post("/agents/deposit/usdc")
async def deposit_usdc(body: UsdcDeposit, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """Credit a deposit, once per ``tx_hash`` (sandbox credit with a sandbox key; a live
    key's deposit is confirmed by the funding rail)."""
    credit = money(body.amount_usdc, USD, "$.amount_usdc")
    posting = await hub.ledger.deposit(
        principal, credit, key=f"usdc:{body.tx_hash}", reference=body.tx_hash
    )
    credited = amount(credit)
    return {
        "transaction_id": posting.id,
        "chain": body.chain,
        "tx_hash": body.tx_hash,
        "amount_usdc": credited,
        "amount_credited": credited,
        "status": "confirmed",
        "confirmations": 12,
        "confirmations_required": 12,
        "message": "USDC deposit confirmed and credited to your account",
    }


class FiatDeposit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: Decimal = Field(ge=5, le=10_000, allow_inf_nan=False)
    payment_method: Literal["card", "bank_transfer"] = "card"
    return_url: str | None = Field(default=None, max_length=2048)


@router.post("/agents/deposit")
async def deposit(
    body: FiatDeposit,
    hub: HubDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> dict[str, Any]:
    """Sandbox credit, at once (a live key's deposit needs the funding rail to confirm it);
    send ``Idempotency-Key`` to make a retry safe."""
    credit = money(body.amount_usd, USD, "$.amount_usd")
    key = idempotency_key.strip() if idempotency_key else new_id()
    posting = await hub.ledger.deposit(
        principal, credit, key=f"fiat:{key}", reference=f"{body.payment_method}:{key}"
    )
    return {
        "transaction_id": posting.id,
        "amount_usd": amount(credit),
        "status": "completed",
        "message": "Funds added (sandbox credit)" if principal.sandbox else "Funds added",
    }


# ---------------------------------------------------------------- tasks


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=1000)
    city: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=100)


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(min_length=1, max_length=50_000)
    location: Location | None = None
    reward_usd: Decimal = Field(gt=0, le=10_000, allow_inf_nan=False)
    deadline: datetime
    proof_requirements: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=50
    )
    task_type: TaskType
    task_domain: Literal["PHYSICAL", "DIGITAL"] | None = None
    proof_type: ProofType | None = None
    digital_instructions: str | None = Field(default=None, max_length=10_000)
    callback_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    callback_secret: str | None = Field(default=None, min_length=1, max_length=200)
    agent_public_key: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)


def _sla(deadline: datetime, now: datetime) -> int:
    # a second short: the task is made a moment after ``now``, and must end by the deadline
    seconds = math.floor((utc(deadline) - now).total_seconds()) - 1
    if seconds < 60:
        raise ValidationError.at("$.deadline", "must be at least a minute from now")
    if seconds > MAX_SLA_SECONDS:
        raise ValidationError.at("$.deadline", "must be within 30 days")
    return seconds


def _spec(body: TaskIn, principal: Principal, key: str, now: datetime) -> dict[str, Any]:
    domain = body.task_domain or ("PHYSICAL" if body.task_type in PHYSICAL else "DIGITAL")
    if domain == "PHYSICAL" and body.location is None:
        raise ValidationError.at("$.location", "a physical task needs a location")
    if body.task_type in CREDENTIAL and not body.agent_public_key:
        raise ValidationError.at("$.agent_public_key", "a credential task needs it")
    proof = _proof_type(body.task_type, body.proof_type)
    location = body.location.model_dump(exclude_none=True) if body.location else None
    reward = money(body.reward_usd, USD, "$.reward_usd")
    payload: dict[str, JsonValue] = {
        "location": location or {"address": "Remote/Digital"},
        "proof_requirements": list(body.proof_requirements),
        "proof_type": proof,
        "task_domain": domain,
        "digital_instructions": body.digital_instructions,
        "agent_public_key": body.agent_public_key,
    }
    if principal.sandbox:  # HumanOps' sandbox escrows nothing: no money moves at all
        payload["reward_usd"] = amount(reward)
    return {
        "kind": Kind.JUDGMENT,
        "task_type": body.task_type,
        "title": body.title,
        "instructions": body.description,
        "payload": payload,
        "output_schema": proof_schema(proof),
        "sla_seconds": _sla(body.deadline, now),
        "payout": None if principal.sandbox else reward,
        # live tasks go to an operator who offers an estimate; the simulated one just answers
        "require_estimate": not principal.sandbox,
        "callback_url": body.callback_url,
        "idempotency_key": key,
    }


@router.post("/tasks", status_code=201)
async def create(
    body: TaskIn,
    hub: HubDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> JSONResponse:
    """Post a task, holding reward + fee from the balance (402 when it falls short). The
    same ``Idempotency-Key`` again returns the same task (200)."""
    require(principal, Role.REQUESTER)
    header = idempotency_key.strip().strip('"') if idempotency_key else None
    key = header or body.idempotency_key or f"humanops:{new_id()}"
    spec = _spec(body, principal, key, hub.clock.now())
    callback = None
    if body.callback_url is not None:
        callback = Callback(body.callback_url, DIALECT, body.callback_secret or "")
    task, replayed = await create_task(hub, principal, spec, callback=callback)
    hold = await hold_of(hub, task)
    shown: dict[str, Any] = {
        "task_id": task.id,
        "status": status_of(task),
        "reward_usd": reward_of(task),
        "platform_fee": amount(hold.fee) if hold else 0,
        "total_escrow": amount(hold.amount) if hold else 0,
        "deadline": _when(task.expires_at),
        "created_at": _when(task.created_at),
    }
    if task.sandbox:
        shown["sandbox"] = True
        shown["sandbox_notice"] = SANDBOX_NOTICE
    return JSONResponse(shown, status_code=200 if replayed else 201)


async def _page(
    hub: Hub,
    principal: Principal,
    tasks: list[Task],
    limit: int,
    offset: int,
    full: bool = False,
) -> dict[str, Any]:
    page = tasks[offset : offset + limit]
    data = [to_task(t, await _fee(hub, t)) if full else summary_of(t) for t in page]
    return {"data": data, "pagination": {"limit": limit, "offset": offset, "total": len(tasks)}}


@router.get("/tasks")
async def list_tasks(
    hub: HubDep,
    principal: PrincipalDep,
    status: HumanOpsStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict[str, Any]:
    """The agent's tasks, newest first."""
    found = [
        t
        async for t in scan(
            hub,
            principal,
            statuses=_BY_STATUS[status] if status else None,
            kind=Kind.JUDGMENT,
            newest_first=True,
        )
    ]
    return await _page(hub, principal, found, limit, offset)


@router.get("/tasks/{task_id}")
async def get_task(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    task = await _task(hub, principal, task_id)
    return to_task(task, await _fee(hub, task))


@router.post("/tasks/{task_id}/cancel")
async def cancel(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """Cancel a PENDING, ESTIMATE_PENDING or ACCEPTED task: the escrow comes back."""
    task = await hub.engine.cancel(principal, task_id, "cancelled by the agent")
    hold = await hold_of(hub, task)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "refunded_usd": amount(hold.amount) if hold else 0,
    }


@router.post("/tasks/{task_id}/estimate/approve")
async def approve_estimate(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    before = await _task(hub, principal, task_id)
    task = await hub.engine.approve_estimate(principal, task_id)
    operator = _operator(task)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "accepted_at": _when(task.reached_at.get(Status.ASSIGNED)),
        "operator": {"name": operator["name"], "rating": None} if operator else None,
        "estimate_minutes": _minutes(before),
    }


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=10_000)


@router.post("/tasks/{task_id}/estimate/reject")
async def reject_estimate(
    task_id: TaskId, hub: HubDep, principal: PrincipalDep, body: Reason | None = None
) -> dict[str, Any]:
    task = await hub.engine.reject_estimate(principal, task_id, body.reason if body else None)
    return {
        "task_id": task.id,
        "status": status_of(task),
        "message": "Estimate rejected. Task is available again.",
    }


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["APPROVE", "REJECT"]
    reason: str | None = Field(default=None, max_length=10_000)


@router.post("/tasks/{task_id}/verify")
async def verify(
    task_id: TaskId, body: Verdict, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Pass or fail a task in MANUAL_REVIEW. In Handrail a person with an admin key makes
    that call, not the agent that posted the task."""
    if not principal.has(Role.ADMIN):
        raise ApiProblem(403, "forbidden", "manual review takes an admin key in Handrail")
    if body.decision == "APPROVE":
        task = await hub.engine.verify(principal, task_id, reason=body.reason)
        message = "Task manually approved and completed."
    else:
        why = body.reason or "rejected in manual review"
        task = await hub.engine.fail(principal, task_id, why)
        message = "Task manually rejected."
    return {"task_id": task.id, "status": status_of(task), "message": message}


async def _credential(task_id: str, hub: Hub, principal: Principal) -> dict[str, Any]:
    task = await _task(hub, principal, task_id)
    if task.status is not Status.VERIFIED:
        raise InvalidTransition(task.id, task.status.value, "retrieve_credential")
    found = task.output.get("encrypted_credential") if isinstance(task.output, dict) else None
    if not isinstance(found, dict):
        raise NotFound("credential", task.id)
    return {"task_id": task.id, "encrypted_credential": found}


@router.post("/tasks/{task_id}/retrieve-credential")
async def retrieve_credential(
    task_id: TaskId, hub: HubDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The encrypted credential of a completed credential task (decrypt it yourself)."""
    return await _credential(task_id, hub, principal)


router.add_api_route("/tasks/{task_id}/retrieve-credential", retrieve_credential, methods=["GET"])


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
    if not principal.has(Role.REVIEWER):
        raise ApiProblem(403, "forbidden", "operator endpoints take an operator's (reviewer) key")
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
            org_id=principal.org_id,
            role=Role.REVIEWER,
            now=now,
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
            "deadline": _when(t.expires_at),
            "proof_requirements": t.payload.get("proof_requirements", []),
            "proof_type": t.payload.get("proof_type"),
            "requires_estimate": t.require_estimate,
            "created_at": _when(t.created_at),
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
        "estimate_minutes": _minutes(task),
        "claimed_at": _when(claimed),
        "approval_deadline": _when(task.expires_at) if task.require_estimate else None,
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
        "submitted_at": _when(task.reached_at.get(Status.SUBMITTED)),
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
                "completed_at": _when(task.reached_at.get(Status.VERIFIED)),
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
    key = idempotency_key.strip() if idempotency_key else new_id()
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


# ---------------------------------------------------------------- callbacks

_EVENTS = {
    "task.verified": "task.verified",
    "task.manual_review": "task.manual_review",
    "task.failed": "task.disputed",
    "task.disputed": "task.disputed",
}


class HumanOpsScheme:
    """Callbacks as HumanOps sends them: ``{"event", "task_id", "status",
    "guardian_result", "timestamp"}`` (and ``event_id``, the same on every retry), signed
    ``X-HumanOps-Signature: <hex HMAC-SHA256 of the body>`` when the task gave a
    ``callback_secret``."""

    name = DIALECT

    def payload(self, event: Outbound) -> dict[str, Any] | None:
        kind = _EVENTS.get(event.type)
        if event.task is None or kind is None:
            return None
        return {
            "event": kind,
            "event_id": event.id,
            "task_id": event.task.id,
            "status": status_of(event.task),
            "guardian_result": _guardian(event.task),
            "timestamp": _when(event.at),
        }

    def headers(self, secret: str, event_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        if not secret:
            return {}
        mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        return {"X-HumanOps-Signature": mac}


SCHEME = HumanOpsScheme()
close_router(router, render)
