"""The seam between the client and where tasks live: in-process now, HTTP alike.

:class:`Backend` is what ``Handrail`` needs; :class:`LocalBackend` is the engine in this
process acting as one principal. An HTTP backend implements the same protocol, so code
holding a ``Handrail`` never cares which one it has.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Collection, Mapping
from datetime import datetime
from typing import Any, Protocol, cast

from ..audit import AuditEntry, ChainReport
from ..engine import Engine
from ..ledger import Account, Balance, Earnings, EntryPage, Ledger, PayoutRecord, Posting
from ..lifecycle import Status
from ..models import (
    Decision,
    DecisionType,
    Kind,
    Page,
    Principal,
    RiskTier,
    Role,
    Task,
    TaskEvent,
    TaskSpec,
)
from ..money import Currency, Money
from ..policy import Explanation, Policy, ReviewerGroup, StandingApproval
from ..tokens import TokenClaims

__all__ = ["Backend", "LocalBackend", "opened"]


async def opened(
    stream: AsyncGenerator[TaskEvent | None, None],
) -> AsyncGenerator[TaskEvent, None]:
    """``stream`` run up to its first ``yield None`` (which says it is open, its position
    fixed), ready to give events."""
    await anext(stream)
    return cast("AsyncGenerator[TaskEvent, None]", stream)


class Backend(Protocol):
    @property
    def principal_id(self) -> str: ...

    def as_reviewer(self, reviewer_id: str) -> Backend: ...

    def now(self) -> datetime:
        """The time by the backend's clock (decisions' shelf lives are judged by it)."""
        ...

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
    async def open_events(self, after: int | None = None) -> AsyncGenerator[TaskEvent, None]: ...
    async def cancel(self, task_id: str, reason: str | None = None) -> Task: ...
    async def wait(self, task_id: str, timeout: float | None = None) -> Task: ...
    async def approve_estimate(self, task_id: str) -> Task: ...
    async def reject_estimate(self, task_id: str, reason: str | None = None) -> Task: ...
    async def dispute(self, task_id: str, reason: str) -> Task: ...
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
        skip: Collection[str] = (),
    ) -> builtins.list[Task]: ...
    async def claim(self, task_id: str) -> Task: ...
    async def release(self, task_id: str, reason: str | None = None) -> Task: ...
    async def offer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task: ...
    async def decide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task: ...
    async def submit(self, task_id: str, output: Any) -> Task: ...
    async def verify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task: ...
    async def fail(self, task_id: str, reason: str) -> Task: ...
    async def resolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task: ...
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
    async def get_policy(self) -> Policy: ...
    async def put_policy(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy: ...
    async def explain_policy(
        self, review: TaskSpec | Mapping[str, Any], *, policy: Policy | Mapping[str, Any] | None
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
    async def mint_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]: ...
    async def redeem_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task: ...
    async def audit_entries(
        self, *, after: int = 0, limit: int = 100
    ) -> builtins.list[AuditEntry]: ...
    async def verify_audit(self) -> ChainReport: ...


class LocalBackend:
    """The engine in this process, acting as ``principal``."""

    def __init__(self, engine: Engine, principal: Principal, ledger: Ledger | None = None) -> None:
        self.engine = engine
        self.principal = principal
        self._ledger = ledger

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise RuntimeError("this client has no ledger: build it with one to move money")
        return self._ledger

    @property
    def principal_id(self) -> str:
        return self.principal.id

    def as_reviewer(self, reviewer_id: str) -> LocalBackend:
        reviewer = Principal(
            org_id=self.principal.org_id,
            id=reviewer_id,
            roles=frozenset({Role.REVIEWER}),
            sandbox=self.principal.sandbox,
        )
        return LocalBackend(self.engine, reviewer, self._ledger)

    def now(self) -> datetime:
        return self.engine.clock.now()

    async def create(self, spec: TaskSpec | Mapping[str, Any]) -> Task:
        return await self.engine.create(self.principal, spec)

    async def get(self, task_id: str) -> Task:
        return await self.engine.get(self.principal, task_id)

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
        return await self.engine.list(
            self.principal,
            status=status,
            kind=kind,
            task_type=task_type,
            batch_id=batch_id,
            after=after,
            limit=limit,
            newest_first=newest_first,
        )

    async def history(self, task_id: str) -> builtins.list[TaskEvent]:
        return await self.engine.history(self.principal, task_id)

    async def open_events(self, after: int | None = None) -> AsyncGenerator[TaskEvent, None]:
        """Every history entry of the organisation's tasks after sequence number ``after``
        (None: from now on), in order, as they are committed; it never ends. The position
        is fixed when this returns."""
        return await self.engine.events(self.principal, after)

    async def cancel(self, task_id: str, reason: str | None = None) -> Task:
        return await self.engine.cancel(self.principal, task_id, reason)

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        return await self.engine.wait(self.principal, task_id, timeout)

    async def approve_estimate(self, task_id: str) -> Task:
        return await self.engine.approve_estimate(self.principal, task_id)

    async def reject_estimate(self, task_id: str, reason: str | None = None) -> Task:
        return await self.engine.reject_estimate(self.principal, task_id, reason)

    async def dispute(self, task_id: str, reason: str) -> Task:
        return await self.engine.dispute(self.principal, task_id, reason)

    async def queue(
        self,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
    ) -> builtins.list[Task]:
        return await self.engine.queue(
            self.principal, kind=kind, task_type=task_type, risk_tier=risk_tier, limit=limit
        )

    async def wait_for_work(
        self,
        timeout: float | None = None,
        *,
        kind: Kind | str | None = None,
        skip: Collection[str] = (),
    ) -> builtins.list[Task]:
        return await self.engine.wait_for_work(self.principal, timeout, kind=kind, skip=skip)

    async def claim(self, task_id: str) -> Task:
        return await self.engine.claim(self.principal, task_id)

    async def release(self, task_id: str, reason: str | None = None) -> Task:
        return await self.engine.release(self.principal, task_id, reason)

    async def offer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task:
        return await self.engine.offer_estimate(
            self.principal, task_id, amount=amount, eta_seconds=eta_seconds, note=note
        )

    async def decide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task:
        return await self.engine.decide(self.principal, task_id, decision)

    async def submit(self, task_id: str, output: Any) -> Task:
        return await self.engine.submit(self.principal, task_id, output)

    async def verify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task:
        return await self.engine.verify(self.principal, task_id, output, reason)

    async def fail(self, task_id: str, reason: str) -> Task:
        return await self.engine.fail(self.principal, task_id, reason)

    async def resolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task:
        return await self.engine.resolve_dispute(
            self.principal, task_id, uphold=uphold, reason=reason
        )

    async def deposit(self, amount: Money, *, key: str, reference: str | None = None) -> Posting:
        return await self.ledger.deposit(self.principal, amount, key=key, reference=reference)

    async def balance(self, currency: Currency | str = "USD") -> Balance:
        return await self.ledger.balance(self.principal, currency)

    async def earnings(
        self, currency: Currency | str = "USD", worker_id: str | None = None
    ) -> Earnings:
        return await self.ledger.earnings(self.principal, currency, worker_id)

    async def entries(
        self, account: Account, *, after: int | None = None, limit: int = 50
    ) -> EntryPage:
        return await self.ledger.entries(self.principal, account, after=after, limit=limit)

    async def request_payout(self, amount: Money, *, key: str) -> PayoutRecord:
        return await self.ledger.request_payout(self.principal, amount, key=key)

    async def payouts(self, worker_id: str | None = None) -> builtins.list[PayoutRecord]:
        return await self.ledger.payouts(self.principal, worker_id)

    async def get_policy(self) -> Policy:
        return await self.engine.get_policy(self.principal)

    async def put_policy(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy:
        return await self.engine.put_policy(
            self.principal, policy, expected_version=expected_version
        )

    async def explain_policy(
        self, review: TaskSpec | Mapping[str, Any], *, policy: Policy | Mapping[str, Any] | None
    ) -> Explanation:
        return await self.engine.explain_policy(self.principal, review, policy=policy)

    async def list_groups(self) -> builtins.list[ReviewerGroup]:
        return await self.engine.list_groups(self.principal)

    async def put_group(
        self, name: str, members: Collection[str], description: str | None = None
    ) -> ReviewerGroup:
        return await self.engine.put_group(self.principal, name, members, description)

    async def delete_group(self, name: str) -> None:
        await self.engine.delete_group(self.principal, name)

    async def list_standing(self, *, active: bool = True) -> builtins.list[StandingApproval]:
        return await self.engine.list_standing(self.principal, active=active)

    async def revoke_standing(
        self, approval_id: str, reason: str | None = None
    ) -> StandingApproval:
        return await self.engine.revoke_standing(self.principal, approval_id, reason)

    async def mint_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        return await self.engine.mint_decision_token(
            self.principal, task_id, reviewer_id, ttl_seconds=ttl_seconds, decision=decision
        )

    async def redeem_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task:
        return await self.engine.redeem_decision_token(token, decision, task_id=task_id)

    async def audit_entries(self, *, after: int = 0, limit: int = 100) -> builtins.list[AuditEntry]:
        return await self.engine.audit_entries(self.principal, after=after, limit=limit)

    async def verify_audit(self) -> ChainReport:
        return await self.engine.verify_audit(self.principal)
