"""One principal's view of Handrail: every operation, async, in one ``Protocol``.

A :class:`Session` is bound to the principal it acts for (a requester, a reviewer, an
admin), so no call names one. Two implementations hold to it, and one conformance suite
(:class:`handrail.testing.SessionConformance`) runs against both:

- ``engine.session(principal)``: the engine in this process;
- the HTTP client: the same operations over the REST API, the API key deciding who acts.

The names are the engine's, so an operation is found by one name in every layer: the
engine module that owns it, this protocol, the HTTP client, the route.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Collection, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from .audit import AuditEntry, ChainReport
from .ledger import Account, Balance, Earnings, EntryPage, PayoutRecord, Posting
from .lifecycle import Status
from .models import (
    Decision,
    DecisionType,
    Kind,
    Page,
    RiskTier,
    Task,
    TaskEvent,
    TaskSpec,
)
from .money import Currency, Money
from .policy import Explanation, Policy, ReviewerGroup, StandingApproval
from .tokens import TokenClaims
from .workers import WorkerProfile, WorkerStats

__all__ = ["Session"]


@runtime_checkable
class Session(Protocol):
    """Every operation one principal can ask of Handrail. See the module docstring."""

    @property
    def principal_id(self) -> str:
        """Who this session acts for."""
        ...

    def now(self) -> datetime:
        """The time by the session's clock (decisions' shelf lives are judged by it)."""
        ...

    # requests: what a requester asks for and follows
    async def create(self, spec: TaskSpec | Mapping[str, Any]) -> Task: ...
    async def get(self, task_id: str) -> Task: ...
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
    ) -> Page: ...
    async def history(self, task_id: str) -> builtins.list[TaskEvent]: ...
    async def events(self, after: int | None = None) -> AsyncGenerator[TaskEvent, None]:
        """Every history entry of the organisation's tasks after sequence number ``after``
        (None: from now on), in order, as committed; it never ends. The position is fixed
        when this returns."""
        ...

    async def cancel(self, task_id: str, reason: str | None = None) -> Task: ...
    async def wait(self, task_id: str, timeout: float | None = None) -> Task: ...
    async def approve_estimate(self, task_id: str) -> Task: ...
    async def reject_estimate(self, task_id: str, reason: str | None = None) -> Task: ...
    async def dispute(self, task_id: str, reason: str) -> Task: ...

    # work: what a reviewer does
    async def queue(
        self,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
    ) -> builtins.list[Task]: ...
    async def wait_for_work(
        self,
        timeout: float | None = None,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
        skip: Collection[str] = (),
    ) -> builtins.list[Task]: ...
    async def claim(self, task_id: str) -> Task: ...
    async def assign(self, task_id: str, worker_id: str) -> Task: ...
    async def release(self, task_id: str, reason: str | None = None) -> Task: ...
    async def offer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task: ...
    async def withdraw_estimate(self, task_id: str, reason: str | None = None) -> Task: ...
    async def submit(self, task_id: str, output: Any) -> Task: ...
    async def decide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task: ...

    # oversight: manual verification and disputes
    async def verify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task: ...
    async def fail(self, task_id: str, reason: str) -> Task: ...
    async def resolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task: ...

    # governance: policies, groups, standing approvals, decision tokens
    async def get_policy(self) -> Policy: ...
    async def put_policy(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy: ...
    async def explain_policy(
        self,
        review: TaskSpec | Mapping[str, Any],
        *,
        policy: Policy | Mapping[str, Any] | None = None,
    ) -> Explanation: ...
    async def list_groups(self) -> builtins.list[ReviewerGroup]: ...
    async def put_group(
        self, name: str, members: Collection[str], description: str | None = None
    ) -> ReviewerGroup: ...
    async def delete_group(self, name: str) -> None: ...
    async def list_standing(self, *, active: bool = True) -> builtins.list[StandingApproval]: ...
    async def revoke_standing(
        self, approval_id: str, reason: str | None = None
    ) -> StandingApproval: ...
    async def mint_decision_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]: ...
    async def redeem_decision_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task: ...

    # audit
    async def audit_entries(
        self, *, after: int = 0, limit: int = 100
    ) -> builtins.list[AuditEntry]: ...
    async def verify_audit(self) -> ChainReport: ...

    # workers: reviewer profiles and their record
    async def put_worker(self, profile: WorkerProfile | Mapping[str, Any]) -> WorkerProfile: ...
    async def get_worker(self, worker_id: str) -> WorkerProfile: ...
    async def list_workers(self) -> builtins.list[WorkerProfile]: ...
    async def worker_stats(self, worker_id: str) -> builtins.list[WorkerStats]: ...

    # ledger: money for paid work
    async def deposit(
        self, amount: Money, *, key: str, reference: str | None = None
    ) -> Posting: ...
    async def balance(self, currency: Currency | str = "USD") -> Balance: ...
    async def earnings(
        self, currency: Currency | str = "USD", worker_id: str | None = None
    ) -> Earnings: ...
    async def entries(
        self, account: Account, *, after: int | None = None, limit: int = 50
    ) -> EntryPage: ...
    async def request_payout(self, amount: Money, *, key: str) -> PayoutRecord: ...
    async def payouts(self, worker_id: str | None = None) -> builtins.list[PayoutRecord]: ...
