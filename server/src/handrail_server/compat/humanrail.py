"""HumanRail's API (the ``humanrail`` SDK and its OpenAPI), under ``/compat/humanrail/v1``.

A HumanRail task is a Handrail judgment task: ``payload`` is the context, ``outputSchema``
the answer's schema, ``payout.maxAmount`` the reward. Keys are Handrail keys (``hr_test_``
plays ``ek_test_``: simulated reviewers answer). Callbacks (``callbackUrl``) are signed
``X-Escalation-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`` with the
organisation's HumanRail secret (``GET /webhooks/secret``, admins).

==================  ====================================
Handrail status     HumanRail status
==================  ====================================
posted              posted
estimate_pending    posted
assigned            assigned
submitted           submitted
manual_review       submitted
verified, disputed  verified
failed              failed
expired             expired
cancelled           cancelled
==================  ====================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
from fastapi import Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from handrail import Currency, Kind, Money, Principal, RiskTier, Role, Status, Task
from handrail.clock import utc
from handrail.errors import ValidationError
from handrail.ids import new_id

from ..auth import require
from ..deps import HubDep, PrincipalDep
from ..idempotency import parse_key
from ..problems import ApiProblem
from ..schemas import TaskId
from ..webhooks import Outbound, UnsafeTarget
from ._dialect import Failure, close_router, dialect_router
from ._shared import Callback, amount, create_task, floor_id, money, scan, signing_secret

__all__ = ["SCHEME", "HumanRailScheme", "router", "status_of", "to_task"]

PREFIX = "/compat/humanrail/v1"
DIALECT = "humanrail"

STATUS: dict[Status, str] = {
    Status.POSTED: "posted",
    Status.ESTIMATE_PENDING: "posted",
    Status.ASSIGNED: "assigned",
    Status.SUBMITTED: "submitted",
    Status.MANUAL_REVIEW: "submitted",
    Status.VERIFIED: "verified",
    Status.DISPUTED: "verified",
    Status.FAILED: "failed",
    Status.EXPIRED: "expired",
    Status.CANCELLED: "cancelled",
}
HumanRailStatus = Literal[
    "posted", "assigned", "submitted", "verified", "failed", "cancelled", "expired"
]
EVENTS = frozenset(f"task.{s}" for s in set(STATUS.values()))


def status_of(task: Task) -> str:
    return STATUS[task.status]


def _when(value: datetime | None) -> str | None:
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


def to_task(task: Task) -> dict[str, Any]:
    """A Handrail task as HumanRail shows it (camelCase; ``output`` once verified)."""
    status = status_of(task)
    payout = task.payout
    shown: dict[str, Any] = {
        "id": task.id,
        "idempotencyKey": task.idempotency_key or "",
        "status": status,
        "taskType": task.task_type,
        "riskTier": task.risk_tier.value,
        "slaSeconds": task.sla_seconds,
        "payload": task.payload,
        "outputSchema": task.output_schema or {},
        "payout": {
            "currency": payout.currency.value if payout else "USD",
            "maxAmount": amount(payout),
        },
        "callbackUrl": task.callback_url,
        "metadata": task.metadata or None,
        "output": None,
        "payoutResult": None,
        "failureReason": task.failure_reason if status == "failed" else None,
        "createdAt": _when(task.created_at),
        "updatedAt": _when(task.updated_at),
        "expiresAt": _when(task.expires_at),
    }
    if status == "verified":
        shown["output"] = task.output
        paid = len(task.workers_agreeing_with(task.output))
        if payout is not None and payout.minor and paid:
            shown["payoutResult"] = {
                "id": f"resolve:{task.id}",
                "amount": amount(payout * paid),
                "currency": payout.currency.value,
                "rail": "internal",
                "paidAt": _when(task.reached_at.get(Status.VERIFIED, task.updated_at)),
            }
    return shown


# ---------------------------------------------------------------- errors

_TYPES = {
    400: "validation_error",
    401: "authentication_error",
    402: "payment_required",
    403: "authorization_error",
    404: "not_found",
    409: "conflict",
    422: "validation_error",
    429: "rate_limit_exceeded",
}


def _details(failure: Failure) -> dict[str, Any] | None:
    details: dict[str, Any] = {
        e["path"].removeprefix("$").removeprefix(".") or "body": e["message"]
        for e in failure.errors
    }
    details.update(failure.context)
    return details or None


def render(request: Request, failure: Failure) -> Response:
    """``{"error": {"type", "message", "code", "details"}, "requestId"}``; a request that
    does not parse is 400, one the engine refuses 422."""
    status = 400 if failure.request_error is not None else failure.status
    if status == 410 or failure.code == "idempotency_conflict":
        status = 409  # an expired task, a key used for another request: conflicts here
    kind = _TYPES.get(status, "internal_error" if status >= 500 else "invalid_request")
    body = {
        "error": {
            "type": kind,
            "message": failure.message,
            "code": failure.code,
            "details": _details(failure),
        },
        "requestId": request.scope.get("request_id"),
    }
    return JSONResponse(body, status_code=status, headers=failure.headers)


router = dialect_router(PREFIX, "compat: HumanRail", render)


# ---------------------------------------------------------------- tasks


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: Literal["USD", "SATS", "BTC"]
    max_amount: Decimal = Field(alias="maxAmount", ge=0, allow_inf_nan=False)


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idempotency_key: str | None = Field(
        default=None, alias="idempotencyKey", min_length=1, max_length=256
    )
    task_type: str = Field(alias="taskType", min_length=1, max_length=100)
    risk_tier: RiskTier = Field(default=RiskTier.MEDIUM, alias="riskTier")
    sla_seconds: int = Field(default=600, alias="slaSeconds", ge=30, le=86_400)
    payload: dict[str, JsonValue]
    output_schema: dict[str, JsonValue] = Field(alias="outputSchema")
    payout: PayoutIn
    callback_url: str | None = Field(
        default=None, alias="callbackUrl", max_length=2048, pattern=r"^https?://\S+$"
    )
    metadata: dict[str, JsonValue] | None = None


def _bad_request(path: str, message: str) -> ApiProblem:
    return ApiProblem(
        400, "validation_error", f"{path}: {message}", errors=[{"path": path, "message": message}]
    )


def _key(header: str | None, body: str | None) -> str:
    """The idempotency key, from the header or the body (the SDK sends both)."""
    given = parse_key(header)  # the header's rule: a structured-field string
    if given and body and given != body:
        raise _bad_request("idempotencyKey", "differs from the Idempotency-Key header")
    key = given or body
    if not key:
        raise _bad_request("idempotencyKey", "is required (or send Idempotency-Key)")
    return key


@router.post("/tasks", status_code=201)
async def create(
    body: TaskCreate,
    hub: HubDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Create a task: 201, or 200 when the idempotency key names one already made (the
    same request again; another request with that key is 409)."""
    require(principal, Role.REQUESTER)
    key = _key(idempotency_key, body.idempotency_key)
    if body.payout.currency == "BTC":
        raise ValidationError.at("payout.currency", "Handrail keeps bitcoin in SATS: send SATS")
    reward = money(body.payout.max_amount, body.payout.currency, "payout.maxAmount")
    spec = {
        "kind": Kind.JUDGMENT,
        "task_type": body.task_type,
        "title": body.task_type,
        "payload": body.payload,
        "output_schema": body.output_schema,
        "risk_tier": body.risk_tier,
        "sla_seconds": body.sla_seconds,
        "payout": reward if reward.minor else None,
        "callback_url": body.callback_url,
        "metadata": body.metadata or {},
        "idempotency_key": key,
    }
    callback = None
    if body.callback_url is not None:
        secret = await signing_secret(hub, principal.org_id, DIALECT)
        callback = Callback(body.callback_url, DIALECT, secret)
    task, replayed = await create_task(
        hub, principal, spec, callback=callback, callback_path="callbackUrl"
    )
    return JSONResponse(to_task(task), status_code=200 if replayed else 201)


_BY_STATUS: dict[str, frozenset[Status]] = {
    name: frozenset(s for s, shown in STATUS.items() if shown == name)
    for name in set(STATUS.values())
}


@router.get("/tasks")
async def list_tasks(
    hub: HubDep,
    principal: PrincipalDep,
    status: HumanRailStatus | None = None,
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> dict[str, Any]:
    """The organisation's HumanRail tasks (judgment tasks), oldest first, ``limit`` at a
    time: pass ``nextCursor`` back as ``after``."""
    low = utc(created_after) if created_after else None
    high = utc(created_before) if created_before else None
    start = after
    if low is not None and (start is None or floor_id(low) > start):
        start = floor_id(low)
    found: list[Task] = []
    tasks = scan(
        hub,
        principal,
        statuses=_BY_STATUS[status] if status else None,
        kind=Kind.JUDGMENT,
        task_type=task_type,
        after=start,
    )
    async for task in tasks:
        if high is not None and task.created_at > high:
            break
        if low is not None and task.created_at < low:
            continue
        found.append(task)
        if len(found) > limit:
            break
    more = len(found) > limit
    page = found[:limit]
    return {
        "data": [to_task(t) for t in page],
        "hasMore": more,
        "nextCursor": page[-1].id if more else None,
    }


@router.get("/tasks/{task_id}")
async def get_task(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    return to_task(await hub.engine.get(principal, task_id))


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(task_id: TaskId, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """Cancel a task nobody has answered (409 otherwise); cancelling it again is 200."""
    task = await hub.engine.cancel(principal, task_id, "cancelled through the HumanRail API")
    return {
        "id": task.id,
        "status": status_of(task),
        "cancelledAt": _when(task.reached_at.get(Status.CANCELLED, task.updated_at)),
    }


# ---------------------------------------------------------------- webhooks


def _sign(secret: str, timestamp: int, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class HumanRailScheme:
    """Callbacks as HumanRail sends them: ``{"id", "type", "createdAt", "data": task}``,
    signed ``X-Escalation-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""

    name = DIALECT

    def payload(self, event: Outbound) -> dict[str, Any] | None:
        if event.task is None or event.type not in EVENTS:
            return None  # HumanRail has no manual_review or disputed event
        return {
            "id": event.id,
            "type": event.type,
            "createdAt": _when(event.at),
            "data": to_task(event.task),
        }

    def headers(self, secret: str, event_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        signature = _sign(secret, int(sent_at.timestamp()), body)
        # the OpenAPI names the header X-Escalation-Signature, the README X-HumanRail-Signature
        return {"X-Escalation-Signature": signature, "X-HumanRail-Signature": signature}


SCHEME = HumanRailScheme()


class TestEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_type: Literal[
        "task.posted",
        "task.assigned",
        "task.submitted",
        "task.verified",
        "task.failed",
        "task.cancelled",
        "task.expired",
    ] = Field(alias="eventType")
    callback_url: str | None = Field(
        default=None, alias="callbackUrl", max_length=2048, pattern=r"^https?://\S+$"
    )


def _sample(principal: Principal, status: str, now: datetime) -> dict[str, Any]:
    task_id = new_id()
    return {
        "id": task_id,
        "idempotencyKey": f"test:{task_id}",
        "status": status,
        "taskType": "webhook_test",
        "riskTier": "low",
        "slaSeconds": 600,
        "payload": {"message": "a test event from Handrail", "org": principal.org_id},
        "outputSchema": {"type": "object"},
        "payout": {"currency": "USD", "maxAmount": 0},
        "callbackUrl": None,
        "metadata": None,
        "output": {} if status == "verified" else None,
        "payoutResult": None,
        "failureReason": "a test failure" if status == "failed" else None,
        "createdAt": _when(now),
        "updatedAt": _when(now),
        "expiresAt": _when(now + timedelta(seconds=600)),
    }


@router.post("/webhooks/test")
async def test_webhook(body: TestEvent, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """Send one signed test event to ``callbackUrl`` now, and say how it was answered.
    Handrail keeps callback URLs per task, so ``callbackUrl`` is required."""
    require(principal, Role.REQUESTER)
    if body.callback_url is None:
        raise ValidationError.at(
            "callbackUrl", "is required: Handrail keeps callback URLs per task, not per account"
        )
    now = hub.clock.now()
    event_id = new_id()
    event = {
        "id": event_id,
        "type": body.event_type,
        "createdAt": _when(now),
        "data": _sample(principal, body.event_type.removeprefix("task."), now),
    }
    secret = await signing_secret(hub, principal.org_id, DIALECT)
    sent = json.dumps(event, separators=(",", ":"))
    status: int | None = None
    error: str | None = None
    try:
        answer = await hub.delivery.post(SCHEME, body.callback_url, secret, event_id, sent)
        status = answer.status_code
    except UnsafeTarget as exc:
        raise ValidationError.at("callbackUrl", str(exc)) from None
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {
        "eventId": event_id,
        "deliveredAt": _when(hub.clock.now()) if status is not None else None,
        "statusCode": status,
        "error": error,
    }


@router.get("/webhooks/secret")
async def webhook_secret(hub: HubDep, principal: PrincipalDep) -> dict[str, str]:
    """The organisation's HumanRail signing secret (admins; made on first use)."""
    require(principal, Role.ADMIN)
    return {"secret": await signing_secret(hub, principal.org_id, DIALECT)}


@router.post("/webhooks/secret/rotate")
async def rotate_secret(hub: HubDep, principal: PrincipalDep) -> dict[str, str]:
    """A new signing secret (admins): callbacks of tasks created from now on use it."""
    require(principal, Role.ADMIN)
    return {"secret": await signing_secret(hub, principal.org_id, DIALECT, rotate=True)}


# ---------------------------------------------------------------- usage and health


def _window(
    period: str, start: date | None, end: date | None, today: date
) -> tuple[datetime, datetime, date, date]:
    last = end or today
    span = {"day": 1, "week": 7, "month": 30}[period]
    first = start or last - timedelta(days=span - 1)
    if first > last:
        raise ValidationError.at("query:start_date", "is after end_date")
    if (last - first).days > 366:
        raise ValidationError.at("query:start_date", "usage covers at most 366 days at once")
    low = datetime.combine(first, time.min, tzinfo=UTC)
    high = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    return low, high, first, last


@router.get("/usage")
async def usage(
    hub: HubDep,
    principal: PrincipalDep,
    period: Literal["day", "week", "month"] = "month",
    start_date: date | None = None,
    end_date: date | None = None,
) -> dict[str, Any]:
    """Tasks and payouts of the period (default: the 30 days to today, UTC)."""
    require(principal, Role.REQUESTER)
    low, high, first, last = _window(period, start_date, end_date, hub.clock.now().date())
    counts = dict.fromkeys(("total", "verified", "failed", "cancelled", "expired"), 0)
    seconds: list[float] = []
    paid = {"USD": 0, "SATS": 0}
    payouts = 0
    async for task in scan(hub, principal, kind=Kind.JUDGMENT, after=floor_id(low)):
        if task.created_at >= high:
            break
        if task.created_at < low:
            continue
        counts["total"] += 1
        status = status_of(task)
        if status in counts:
            counts[status] += 1
        if status == "verified":
            done = task.reached_at.get(Status.VERIFIED, task.updated_at)
            seconds.append((done - task.created_at).total_seconds())
            workers = len(task.workers_agreeing_with(task.output))
            if task.payout is not None and task.payout.minor and workers:
                paid[task.payout.currency.value] += task.payout.minor * workers
                payouts += 1
    average = round(sum(seconds) / len(seconds), 3) if seconds else None
    return {
        "period": period,
        "startDate": first.isoformat(),
        "endDate": last.isoformat(),
        "tasks": {**counts, "averageCompletionSeconds": average},
        "payouts": {
            "totalUsd": amount(Money(currency=Currency.USD, minor=paid["USD"])),
            "totalSats": paid["SATS"],
            "count": payouts,
        },
    }


def _healthy() -> dict[str, str]:
    return {"status": "ok"}


router.add_api_route("/healthz", _healthy, methods=["GET"], summary="Health")
close_router(router, render)

# HumanRail's MCP server checks health one level up: ``{base without /v1}/healthz``
health = dialect_router(PREFIX.removesuffix("/v1"), "compat: HumanRail", render)
health.add_api_route("/healthz", _healthy, methods=["GET"], summary="Health")
