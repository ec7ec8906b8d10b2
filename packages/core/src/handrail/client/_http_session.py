"""``HttpSession``: the :class:`~handrail.session.Session` over a Handrail server's REST API.

``Handrail(url, api_key)`` holds one. Each operation is one request to the route of the
same concept (the wire, retries and errors are ``_http``'s); the API key decides who acts,
so a session cannot act as someone else: hold a second one with another key.

Waiting holds requests open rather than asking again: ``wait`` long-polls the task until
it ends, ``wait_for_work`` long-polls the queue (the server leaves out the ``skip`` ids),
``events`` reads the organisation's event stream (SSE).
"""

from __future__ import annotations

import asyncio
import builtins
import math
from collections.abc import AsyncGenerator, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx

from ..audit import AuditEntry, ChainReport
from ..errors import HandrailError, NotFound, TokenRejected, ValidationError, WaitTimeout
from ..ledger import (
    Account,
    AccountKind,
    Balance,
    Earnings,
    EntryPage,
    EntryRecord,
    PayoutRecord,
    Posting,
)
from ..lifecycle import Status
from ..models import Decision, DecisionType, Kind, Page, RiskTier, Task, TaskEvent, TaskSpec
from ..money import Currency, Money
from ..policy import Explanation, Policy, ReviewerGroup, StandingApproval
from ..tokens import TokenClaims, peek_task
from ..workers import WorkerProfile, WorkerStats
from ._http import LONG_POLL, MARGIN, NO_BODY, TRANSIENT, Connection, RetryPolicy, query

__all__ = ["HttpSession"]


_WORKER_FIELDS = frozenset({"skills", "trust_tier", "capacity", "cost_minor", "active"})
"""What ``PUT /v1/workers/{id}`` takes (the organisation and version are the server's)."""


def _task(data: Any) -> Task:
    return Task.model_validate(data)


def _tasks(data: Any) -> builtins.list[Task]:
    return [_task(t) for t in data["data"]]


def _seg(value: str) -> str:
    """One path segment: an id cannot reach another route."""
    return quote(value, safe="")


class _LedgerOverHttp:
    """The ledger's operations over the wire, and who the key acts as (the ledger's
    entries are checked against it); :class:`HttpSession` adds the rest."""

    http: Connection
    _me: str | None
    _org: str | None

    async def whoami(self) -> tuple[str, str]:
        """The organisation and principal the API key acts as (asked once)."""
        if self._me is None or self._org is None:
            me = await self.http.get("/v1/me")
            self._me, self._org = str(me["principal_id"]), str(me["org_id"])
        return self._org, self._me

    async def deposit(self, amount: Money, *, key: str, reference: str | None = None) -> Posting:
        if not key or not key.strip():
            raise ValidationError.at("$.key", "must not be blank")
        body = {"amount": amount, "reference": reference}
        data = await self.http.post("/v1/deposits", body, key=key, dedup=True)
        return Posting.model_validate(data)

    async def balance(self, currency: Currency | str = "USD") -> Balance:
        return Balance.model_validate(await self.http.get("/v1/balance", currency=currency))

    async def earnings(
        self, currency: Currency | str = "USD", worker_id: str | None = None
    ) -> Earnings:
        data = await self.http.get("/v1/earnings", currency=currency, worker_id=worker_id)
        return Earnings.model_validate(data)

    async def entries(
        self, account: Account, *, after: int | None = None, limit: int = 50
    ) -> EntryPage:
        """The API lists the organisation's account and the caller's own earnings."""
        names = {
            AccountKind.ORG_AVAILABLE: "org",
            AccountKind.WORKER_PENDING: "pending",
            AccountKind.WORKER_AVAILABLE: "available",
        }
        name = names.get(account.kind)
        if name is None:
            raise ValidationError.at(
                "$.account",
                "over HTTP only the organisation's account and your own earnings are listed",
            )
        org, me = await self.whoami()
        if account.org_id != org or (name != "org" and account.owner != me):
            raise NotFound("account", account.id)
        data = await self.http.get(
            "/v1/ledger/entries", account=name, currency=account.currency, after=after, limit=limit
        )
        items = tuple(EntryRecord.model_validate(e) for e in data["data"])
        return EntryPage(items=items, next_cursor=data.get("next_cursor"))

    async def request_payout(self, amount: Money, *, key: str) -> PayoutRecord:
        if not key or not key.strip():
            raise ValidationError.at("$.key", "must not be blank")
        data = await self.http.post("/v1/payouts", {"amount": amount}, key=key, dedup=True)
        return PayoutRecord.model_validate(data)

    async def payouts(self, worker_id: str | None = None) -> builtins.list[PayoutRecord]:
        data = await self.http.get("/v1/payouts", worker_id=worker_id)
        return [PayoutRecord.model_validate(p) for p in data["data"]]


class HttpSession(_LedgerOverHttp):
    """The server at ``url``, acting as whoever ``api_key`` belongs to.

    ``timeout`` bounds each ordinary request (long-polls, at most ``long_poll`` seconds
    each, get their own length plus a margin), ``retry`` says how failed requests are
    retried, ``transport`` replaces httpx's network (tests). :meth:`aclose` closes the
    connections."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        long_poll: float = LONG_POLL,
    ) -> None:
        self.http = Connection(
            url, api_key, timeout=timeout, retry=retry, transport=transport, long_poll=long_poll
        )
        self._me: str | None = None
        self._org: str | None = None

    def __repr__(self) -> str:
        return f"HttpSession({self.http.url!r})"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _move(self, task_id: str, action: str, body: Any = NO_BODY) -> Task:
        return _task(await self.http.post(f"/v1/tasks/{_seg(task_id)}/{action}", body))

    # ------------------------------------------------------------ identity

    @property
    def principal_id(self) -> str:
        """Who the key acts as, once :meth:`whoami` found out; ``"api-key"`` until then."""
        return self._me or "api-key"

    def now(self) -> datetime:
        return datetime.now(UTC)

    # ------------------------------------------------------------ requests

    async def create(self, spec: TaskSpec | Mapping[str, Any]) -> Task:
        return _task(await self.http.post("/v1/tasks", spec, dedup=True))

    async def get(self, task_id: str) -> Task:
        return _task(await self.http.get(f"/v1/tasks/{_seg(task_id)}"))

    async def list(
        self,
        *,
        status: Status | str | builtins.list[Status | str] | None = None,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        batch_id: str | None = None,
        after: str | None = None,
        limit: int = 50,
        newest_first: bool = False,
    ) -> Page:
        statuses = status if isinstance(status, list | tuple) or status is None else [status]
        data = await self.http.get(
            "/v1/tasks",
            status=statuses,
            kind=kind,
            task_type=task_type,
            batch_id=batch_id,
            after=after,
            limit=limit,
            order="desc" if newest_first else "asc",
        )
        return Page(items=tuple(_tasks(data)), next_cursor=data.get("next_cursor"))

    async def history(self, task_id: str) -> builtins.list[TaskEvent]:
        data = await self.http.get(f"/v1/tasks/{_seg(task_id)}/history")
        return [TaskEvent.model_validate(e) for e in data["data"]]

    async def events(self, after: int | None = None) -> AsyncGenerator[TaskEvent, None]:
        """The organisation's event stream (``GET /v1/events``, SSE) after sequence number
        ``after`` (None: from now on, fixed when this returns), one ``TaskEvent`` per
        history entry, in order.

        It ends when the connection does: a dropped connection raises ``HandrailError``
        (``code == "connection_error"``), a stream the server closes just ends. Continue
        from the last event's ``seq`` to resume without a gap."""
        stream = self._events(after)
        await anext(stream)  # open: the server has fixed the position
        return cast("AsyncGenerator[TaskEvent, None]", stream)

    async def _events(self, after: int | None) -> AsyncGenerator[TaskEvent | None, None]:
        response = await self.http.send(
            "GET",
            "/v1/events",
            params={} if after is None else {"after": after},
            stream=True,
            read_timeout=max(self.http.timeout, 60.0),  # a keepalive comes every 15 s
        )
        try:
            yield None
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:  # a blank line ends a frame
                    yield TaskEvent.model_validate_json("\n".join(data))
                    data = []
        except TRANSIENT as exc:
            error = HandrailError(
                f"the event stream from {self.http.url} broke off: {type(exc).__name__}: {exc}"
            )
            error.code = "connection_error"
            raise error from exc
        finally:
            await response.aclose()

    async def cancel(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "cancel", {"reason": reason})

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Long-polls (each at most ``long_poll`` seconds and the time left) until the task
        is terminal; ``WaitTimeout`` once ``timeout`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        path = f"/v1/tasks/{_seg(task_id)}/wait"
        task: Task | None = None
        while True:
            left = math.inf if deadline is None else deadline - loop.time()
            if left <= 0:
                task = task or await self.get(task_id)
                if task.terminal:
                    return task
                raise WaitTimeout(task_id, timeout or 0.0, task.status.value)
            poll = max(min(self.http.long_poll, left), 0.001)
            data = await self.http.call(
                "GET", path, params={"timeout": f"{poll:.3f}"}, read_timeout=poll + MARGIN
            )
            task = _task(data)
            if task.terminal:
                return task

    async def approve_estimate(self, task_id: str) -> Task:
        return await self._move(task_id, "estimate/approve")

    async def reject_estimate(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "estimate/reject", {"reason": reason})

    async def dispute(self, task_id: str, reason: str) -> Task:
        return await self._move(task_id, "dispute", {"reason": reason})

    # ------------------------------------------------------------ work

    async def queue(
        self,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
    ) -> builtins.list[Task]:
        data = await self.http.get(
            "/v1/queue", kind=kind, task_type=task_type, risk_tier=risk_tier, limit=limit
        )
        return _tasks(data)

    async def wait_for_work(
        self,
        timeout: float | None = None,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
        skip: Collection[str] = (),
    ) -> builtins.list[Task]:
        """Long-polls ``/v1/queue?wait=`` (the server leaves out ``skip``) until the queue
        has work; ``[]`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        filters = query(
            kind=kind, task_type=task_type, risk_tier=risk_tier, limit=limit, skip=list(skip)
        )
        while True:
            left = math.inf if deadline is None else deadline - loop.time()
            poll = max(min(self.http.long_poll, left), 0.0)
            data = await self.http.call(
                "GET",
                "/v1/queue",
                params={**filters, "wait": f"{poll:.3f}"},
                read_timeout=poll + MARGIN,
            )
            found = _tasks(data)
            if found or poll >= left:
                return found  # work, or the time is up

    async def claim(self, task_id: str) -> Task:
        return await self._move(task_id, "claim")

    async def assign(self, task_id: str, worker_id: str) -> Task:
        return await self._move(task_id, "assignments", {"worker_id": worker_id})

    async def release(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "release", {"reason": reason})

    async def offer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task:
        body = {"amount": amount, "eta_seconds": eta_seconds, "note": note}
        return await self._move(task_id, "estimate", body)

    async def withdraw_estimate(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "estimate/withdraw", {"reason": reason})

    async def submit(self, task_id: str, output: Any) -> Task:
        path = f"/v1/tasks/{_seg(task_id)}/submissions"
        return _task(await self.http.post(path, {"output": output}, dedup=True))

    async def decide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task:
        path = f"/v1/tasks/{_seg(task_id)}/decision"
        return _task(await self.http.post(path, decision, dedup=True))

    # ------------------------------------------------------------ oversight

    async def verify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task:
        return await self._move(task_id, "verify", {"output": output, "reason": reason})

    async def fail(self, task_id: str, reason: str) -> Task:
        return await self._move(task_id, "fail", {"reason": reason})

    async def resolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task:
        return await self._move(task_id, "resolve-dispute", {"uphold": uphold, "reason": reason})

    # ------------------------------------------------------------ governance

    async def get_policy(self) -> Policy:
        return Policy.model_validate(await self.http.get("/v1/policy"))

    async def put_policy(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy:
        rules = policy.rules if isinstance(policy, Policy) else policy.get("rules", [])
        body = {"rules": rules, "expected_version": expected_version}
        return Policy.model_validate(await self.http.call("PUT", "/v1/policy", body=body))

    async def explain_policy(
        self,
        review: TaskSpec | Mapping[str, Any],
        *,
        policy: Policy | Mapping[str, Any] | None = None,
    ) -> Explanation:
        spec = review if isinstance(review, TaskSpec) else TaskSpec.model_validate(review)
        body: dict[str, Any] = spec.model_dump(
            mode="json",
            include={"action", "task_type", "risk_tier", "payload", "metadata", "confidence"},
        )
        if policy is not None:
            rules = policy.rules if isinstance(policy, Policy) else policy.get("rules", [])
            body["policy"] = {"rules": rules}
        data = await self.http.post("/v1/policy/explain", body, dedup=True)
        return Explanation.model_validate(data)

    async def list_groups(self) -> builtins.list[ReviewerGroup]:
        return [ReviewerGroup.model_validate(g) for g in await self.http.get("/v1/reviewer-groups")]

    async def put_group(
        self, name: str, members: Collection[str], description: str | None = None
    ) -> ReviewerGroup:
        body = {"members": list(members), "description": description}
        path = f"/v1/reviewer-groups/{_seg(name)}"
        data = await self.http.call("PUT", path, body=body, deduplicated=True)
        return ReviewerGroup.model_validate(data)

    async def delete_group(self, name: str) -> None:
        await self.http.call("DELETE", f"/v1/reviewer-groups/{_seg(name)}")

    async def list_standing(self, *, active: bool = True) -> builtins.list[StandingApproval]:
        data = await self.http.get("/v1/standing-approvals", active=active)
        return [StandingApproval.model_validate(a) for a in data["data"]]

    async def revoke_standing(
        self, approval_id: str, reason: str | None = None
    ) -> StandingApproval:
        path = f"/v1/standing-approvals/{_seg(approval_id)}/revoke"
        data = await self.http.post(path, {"reason": reason}, dedup=True)
        return StandingApproval.model_validate(data)

    async def mint_decision_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        body = {"reviewer_id": reviewer_id, "ttl_seconds": ttl_seconds, "decision": decision}
        data = await self.http.post(f"/v1/tasks/{_seg(task_id)}/decision-tokens", body)
        claims = TokenClaims(
            id=data["token_id"],
            org_id=(await self.whoami())[0],
            task_id=data["task_id"],
            reviewer_id=data["reviewer_id"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            decision=DecisionType(data["decision"]) if data.get("decision") else None,
        )
        return str(data["token"]), claims

    async def redeem_decision_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task:
        """The token is the credential here (the API key is sent too, and ignored)."""
        target = task_id or peek_task(token)
        if target is None:
            raise TokenRejected("invalid", "not a decision token")
        path = f"/v1/tasks/{_seg(target)}/decision/by-token"
        return _task(await self.http.post(path, {"token": token, "decision": decision}))

    # ------------------------------------------------------------ audit

    async def audit_entries(self, *, after: int = 0, limit: int = 100) -> builtins.list[AuditEntry]:
        data = await self.http.get("/v1/audit", after=after, limit=limit)
        return [AuditEntry.model_validate(e) for e in data["data"]]

    async def verify_audit(self) -> ChainReport:
        return ChainReport.model_validate(await self.http.get("/v1/audit/verify"))

    # ------------------------------------------------------------ workers

    async def put_worker(self, profile: WorkerProfile | Mapping[str, Any]) -> WorkerProfile:
        body = profile.model_dump(mode="json") if isinstance(profile, WorkerProfile) else profile
        fields = {k: v for k, v in dict(body).items() if k in _WORKER_FIELDS}
        worker_id = str(dict(body).get("id", ""))
        if not worker_id:
            raise ValidationError.at("$.id", "a worker profile names its worker")
        path = f"/v1/workers/{_seg(worker_id)}"
        data = await self.http.call("PUT", path, body=fields, deduplicated=True)
        return WorkerProfile.model_validate(data)

    async def get_worker(self, worker_id: str) -> WorkerProfile:
        return WorkerProfile.model_validate(await self.http.get(f"/v1/workers/{_seg(worker_id)}"))

    async def list_workers(self) -> builtins.list[WorkerProfile]:
        return [WorkerProfile.model_validate(w) for w in await self.http.get("/v1/workers")]

    async def worker_stats(self, worker_id: str) -> builtins.list[WorkerStats]:
        data = await self.http.get(f"/v1/workers/{_seg(worker_id)}/stats")
        return [WorkerStats.model_validate(s) for s in data]
