"""``Handrail``: the client agents and reviewers hold, sync and async.

Every operation has a sync method and an async twin named with an ``a`` prefix
(``create``/``acreate``, ``review``/``areview``; ``wait``/``await_`` because ``await`` is a
keyword). The client runs its backend on a private loop (see ``_portal``), so both kinds
of caller share one engine, one connection pool and one waker.
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self, TypeVar

import httpx

from ..audit import AuditEntry, ChainReport
from ..clock import Clock
from ..errors import InvalidTransition, NoAnswer, WaitTimeout
from ..ledger import (
    Account,
    Balance,
    Earnings,
    EntryPage,
    FeeSchedule,
    PayoutRail,
    PayoutRecord,
    Posting,
)
from ..lifecycle import Status
from ..models import (
    Action,
    Decision,
    DecisionType,
    Kind,
    Page,
    Principal,
    ReasonCode,
    Role,
    Task,
    TaskEvent,
    TaskSpec,
)
from ..money import Currency, Money
from ..policy import Explanation, Policy, ReviewerGroup, StandingApproval
from ..runtime import Runtime, open_runtime
from ..sandbox import SandboxReviewer
from ..tokens import DecisionTokens, TokenClaims
from ..verification import Verifier
from ._backend import Backend, LocalBackend
from ._events import AsyncEventStream, EventStream
from ._http import HttpBackend, RetryPolicy
from ._portal import Portal

__all__ = ["AuditOps", "Handrail", "LedgerOps", "OnTimeout", "PolicyOps", "Tasks", "decision_of"]

log = logging.getLogger(__name__)
T = TypeVar("T")
OnTimeout = Literal["reject", "raise"]

NO_ANSWER_IN_TIME = "No human answered in time, so the action was not approved."


def _refused(message: str, code: ReasonCode, rule_id: str | None = None) -> Decision:
    return Decision(type=DecisionType.REJECT, message=message, reason_code=code, rule_id=rule_id)


def decision_of(task: Task, now: datetime | None = None) -> Decision:
    """The decision a finished review task stands for, at ``now`` (default: the system
    clock). Anything but a recorded approve or modify comes out as a reject: an unanswered
    review never becomes an approval, and an approval past its shelf life (``expires_at``)
    comes out as a reject with reason code ``expired``. System rejects carry a reason code
    (:class:`ReasonCode`), so an agent can tell them from a person's "no"."""
    if task.status is Status.VERIFIED and task.decision is not None:
        decision = task.decision
        if decision.is_approval and decision.expired(now):
            assert decision.expires_at is not None
            return _refused(
                f"The approval expired at {decision.expires_at.isoformat()} before it was "
                "used, so the action must not run; ask again.",
                ReasonCode.EXPIRED,
                decision.rule_id,
            )
        return decision
    rule_id = task.policy.rule_id if task.policy is not None else None
    if task.status is Status.EXPIRED:
        return _refused(NO_ANSWER_IN_TIME + " (the review expired)", ReasonCode.TIMEOUT, rule_id)
    if task.status is Status.CANCELLED:
        return _refused(
            "The review was cancelled, so the action was not approved.",
            ReasonCode.CANCELLED,
            rule_id,
        )
    reason = task.failure_reason or task.status.value
    return _refused(
        f"The review did not pass ({reason}), so the action was not approved.",
        ReasonCode.VERIFICATION_FAILED,
        rule_id,
    )


class Tasks:
    """Task operations: the requester's, the reviewer's and the admin's."""

    def __init__(self, backend: Backend, portal: Portal) -> None:
        self._backend = backend
        self._portal = portal

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._portal.call(coro)

    async def _async(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._portal.acall(coro)

    # requester
    def create(self, spec: TaskSpec | Mapping[str, Any] | None = None, /, **fields: Any) -> Task:
        """Post a task: a ``TaskSpec``, a mapping, or its fields as keywords."""
        return self._sync(self._backend.create(_spec(spec, fields)))

    async def acreate(
        self, spec: TaskSpec | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Task:
        return await self._async(self._backend.create(_spec(spec, fields)))

    def get(self, task_id: str) -> Task:
        return self._sync(self._backend.get(task_id))

    async def aget(self, task_id: str) -> Task:
        return await self._async(self._backend.get(task_id))

    def list(self, **filters: Any) -> Page:
        """Tasks by ``status``, ``kind``, ``task_type``; ``after`` a cursor, ``limit``."""
        return self._sync(self._backend.list(**filters))

    async def alist(self, **filters: Any) -> Page:
        return await self._async(self._backend.list(**filters))

    def history(self, task_id: str) -> builtins.list[TaskEvent]:
        return self._sync(self._backend.history(task_id))

    async def ahistory(self, task_id: str) -> builtins.list[TaskEvent]:
        return await self._async(self._backend.history(task_id))

    def events(self, after: int | None = None) -> EventStream:
        """The organisation's task history as it happens: every entry after sequence number
        ``after`` (None: from now on, from this call), in order. In-process it never ends;
        over HTTP it is the server's event stream (SSE) and ends with the connection (a
        broken one raises ``HandrailError``): open another after the last event's ``seq``
        to go on without a gap. Close it (``with hr.tasks.events() as events: ...``)."""
        return EventStream(self._portal, lambda: self._backend.open_events(after))

    def aevents(self, after: int | None = None) -> AsyncEventStream:
        """:meth:`events` for async code: ``async with hr.tasks.aevents() as events:
        async for event in events: ...`` (the position is fixed on entering)."""
        return AsyncEventStream(self._portal, lambda: self._backend.open_events(after))

    def cancel(self, task_id: str, reason: str | None = None) -> Task:
        return self._sync(self._backend.cancel(task_id, reason))

    async def acancel(self, task_id: str, reason: str | None = None) -> Task:
        return await self._async(self._backend.cancel(task_id, reason))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Block until the task is terminal; ``WaitTimeout`` after ``timeout`` seconds."""
        return self._sync(self._backend.wait(task_id, timeout))

    async def await_(self, task_id: str, timeout: float | None = None) -> Task:
        return await self._async(self._backend.wait(task_id, timeout))

    def approve_estimate(self, task_id: str) -> Task:
        return self._sync(self._backend.approve_estimate(task_id))

    async def aapprove_estimate(self, task_id: str) -> Task:
        return await self._async(self._backend.approve_estimate(task_id))

    def reject_estimate(self, task_id: str, reason: str | None = None) -> Task:
        return self._sync(self._backend.reject_estimate(task_id, reason))

    async def areject_estimate(self, task_id: str, reason: str | None = None) -> Task:
        return await self._async(self._backend.reject_estimate(task_id, reason))

    def dispute(self, task_id: str, reason: str) -> Task:
        return self._sync(self._backend.dispute(task_id, reason))

    async def adispute(self, task_id: str, reason: str) -> Task:
        return await self._async(self._backend.dispute(task_id, reason))

    # reviewer
    def queue(self, **filters: Any) -> builtins.list[Task]:
        """Open tasks this reviewer may take: ``kind``, ``task_type``, ``risk_tier``, ``limit``."""
        return self._sync(self._backend.queue(**filters))

    async def aqueue(self, **filters: Any) -> builtins.list[Task]:
        return await self._async(self._backend.queue(**filters))

    def wait_for_work(self, timeout: float | None = None, **filters: Any) -> builtins.list[Task]:
        """The queue as soon as it is not empty; ``[]`` after ``timeout`` seconds."""
        return self._sync(self._backend.wait_for_work(timeout, **filters))

    async def await_for_work(
        self, timeout: float | None = None, **filters: Any
    ) -> builtins.list[Task]:
        return await self._async(self._backend.wait_for_work(timeout, **filters))

    def claim(self, task_id: str) -> Task:
        return self._sync(self._backend.claim(task_id))

    async def aclaim(self, task_id: str) -> Task:
        return await self._async(self._backend.claim(task_id))

    def release(self, task_id: str, reason: str | None = None) -> Task:
        return self._sync(self._backend.release(task_id, reason))

    async def arelease(self, task_id: str, reason: str | None = None) -> Task:
        return await self._async(self._backend.release(task_id, reason))

    def offer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task:
        return self._sync(
            self._backend.offer_estimate(task_id, amount=amount, eta_seconds=eta_seconds, note=note)
        )

    async def aoffer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task:
        return await self._async(
            self._backend.offer_estimate(task_id, amount=amount, eta_seconds=eta_seconds, note=note)
        )

    def decide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task:
        return self._sync(self._backend.decide(task_id, decision))

    async def adecide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task:
        return await self._async(self._backend.decide(task_id, decision))

    def submit(self, task_id: str, output: Any) -> Task:
        return self._sync(self._backend.submit(task_id, output))

    async def asubmit(self, task_id: str, output: Any) -> Task:
        return await self._async(self._backend.submit(task_id, output))

    # admin
    def verify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task:
        """Pass a task out of manual review."""
        return self._sync(self._backend.verify(task_id, output, reason))

    async def averify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task:
        return await self._async(self._backend.verify(task_id, output, reason))

    def fail(self, task_id: str, reason: str) -> Task:
        """Fail a task in manual review."""
        return self._sync(self._backend.fail(task_id, reason))

    async def afail(self, task_id: str, reason: str) -> Task:
        return await self._async(self._backend.fail(task_id, reason))

    def resolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task:
        return self._sync(self._backend.resolve_dispute(task_id, uphold=uphold, reason=reason))

    async def aresolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task:
        return await self._async(
            self._backend.resolve_dispute(task_id, uphold=uphold, reason=reason)
        )


class LedgerOps:
    """Money: the organisation's balance and deposits, a worker's earnings and payouts."""

    def __init__(self, backend: Backend, portal: Portal) -> None:
        self._backend = backend
        self._portal = portal

    def deposit(self, amount: Money, *, key: str, reference: str | None = None) -> Posting:
        """Credit the organisation (sandbox credit, an admin's, or a confirmed transfer).
        The same ``key`` again returns the first deposit."""
        return self._portal.call(self._backend.deposit(amount, key=key, reference=reference))

    async def adeposit(self, amount: Money, *, key: str, reference: str | None = None) -> Posting:
        return await self._portal.acall(self._backend.deposit(amount, key=key, reference=reference))

    def balance(self, currency: Currency | str = "USD") -> Balance:
        """What the organisation may spend, and what is held for its open paid tasks."""
        return self._portal.call(self._backend.balance(currency))

    async def abalance(self, currency: Currency | str = "USD") -> Balance:
        return await self._portal.acall(self._backend.balance(currency))

    def earnings(self, currency: Currency | str = "USD", worker_id: str | None = None) -> Earnings:
        """A worker's pending (in the hold period), available and lifetime earnings."""
        return self._portal.call(self._backend.earnings(currency, worker_id))

    async def aearnings(
        self, currency: Currency | str = "USD", worker_id: str | None = None
    ) -> Earnings:
        return await self._portal.acall(self._backend.earnings(currency, worker_id))

    def entries(self, account: Account, *, after: int | None = None, limit: int = 50) -> EntryPage:
        """An account's entries, oldest first; ``after`` is the previous page's cursor."""
        return self._portal.call(self._backend.entries(account, after=after, limit=limit))

    async def aentries(
        self, account: Account, *, after: int | None = None, limit: int = 50
    ) -> EntryPage:
        return await self._portal.acall(self._backend.entries(account, after=after, limit=limit))

    def request_payout(self, amount: Money, *, key: str) -> PayoutRecord:
        """Pay out available earnings, less the rail's fee. Idempotent by ``key``."""
        return self._portal.call(self._backend.request_payout(amount, key=key))

    async def arequest_payout(self, amount: Money, *, key: str) -> PayoutRecord:
        return await self._portal.acall(self._backend.request_payout(amount, key=key))

    def payouts(self, worker_id: str | None = None) -> builtins.list[PayoutRecord]:
        return self._portal.call(self._backend.payouts(worker_id))

    async def apayouts(self, worker_id: str | None = None) -> builtins.list[PayoutRecord]:
        return await self._portal.acall(self._backend.payouts(worker_id))


class PolicyOps:
    """Policies, reviewer groups, standing approvals and decision tokens.

    Admins manage them; a reviewer lists and revokes its own standing approvals. See
    docs/policies.md."""

    def __init__(self, backend: Backend, portal: Portal) -> None:
        self._backend = backend
        self._portal = portal

    def get(self) -> Policy:
        """The organisation's policy (version 0, no rules, before one is saved)."""
        return self._portal.call(self._backend.get_policy())

    async def aget(self) -> Policy:
        return await self._portal.acall(self._backend.get_policy())

    def put(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy:
        """Save a new version; with ``expected_version``, ``ConcurrencyConflict`` if another
        was saved since."""
        return self._portal.call(
            self._backend.put_policy(policy, expected_version=expected_version)
        )

    async def aput(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy:
        return await self._portal.acall(
            self._backend.put_policy(policy, expected_version=expected_version)
        )

    def explain(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        policy: Policy | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Explanation:
        """Dry run: what the policy (or ``policy``, a draft) makes of a review of
        ``action`` (``task_type``, ``risk_tier``, ``payload``... as keywords), rule by rule."""
        review = {**fields, "kind": Kind.REVIEW, "action": _action(action, args)}
        return self._portal.call(self._backend.explain_policy(review, policy=policy))

    async def aexplain(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        policy: Policy | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Explanation:
        review = {**fields, "kind": Kind.REVIEW, "action": _action(action, args)}
        return await self._portal.acall(self._backend.explain_policy(review, policy=policy))

    def groups(self) -> builtins.list[ReviewerGroup]:
        return self._portal.call(self._backend.list_groups())

    async def agroups(self) -> builtins.list[ReviewerGroup]:
        return await self._portal.acall(self._backend.list_groups())

    def put_group(
        self, name: str, members: Collection[str], description: str | None = None
    ) -> ReviewerGroup:
        """Create or replace reviewer group ``name`` (its members are principal ids)."""
        return self._portal.call(self._backend.put_group(name, members, description))

    async def aput_group(
        self, name: str, members: Collection[str], description: str | None = None
    ) -> ReviewerGroup:
        return await self._portal.acall(self._backend.put_group(name, members, description))

    def delete_group(self, name: str) -> None:
        self._portal.call(self._backend.delete_group(name))

    async def adelete_group(self, name: str) -> None:
        await self._portal.acall(self._backend.delete_group(name))

    def standing(self, *, active: bool = True) -> builtins.list[StandingApproval]:
        """Standing approvals (an admin's: all of them; a reviewer's: its own)."""
        return self._portal.call(self._backend.list_standing(active=active))

    async def astanding(self, *, active: bool = True) -> builtins.list[StandingApproval]:
        return await self._portal.acall(self._backend.list_standing(active=active))

    def revoke_standing(self, approval_id: str, reason: str | None = None) -> StandingApproval:
        return self._portal.call(self._backend.revoke_standing(approval_id, reason))

    async def arevoke_standing(
        self, approval_id: str, reason: str | None = None
    ) -> StandingApproval:
        return await self._portal.acall(self._backend.revoke_standing(approval_id, reason))

    def mint_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        """A single-use, expiring token letting ``reviewer_id`` decide ``task_id``."""
        return self._portal.call(
            self._backend.mint_token(
                task_id, reviewer_id, ttl_seconds=ttl_seconds, decision=decision
            )
        )

    async def amint_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        return await self._portal.acall(
            self._backend.mint_token(
                task_id, reviewer_id, ttl_seconds=ttl_seconds, decision=decision
            )
        )

    def redeem_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task:
        """Decide with a token, as the reviewer it names (``TokenRejected`` if it cannot)."""
        return self._portal.call(self._backend.redeem_token(token, decision, task_id=task_id))

    async def aredeem_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task:
        return await self._portal.acall(
            self._backend.redeem_token(token, decision, task_id=task_id)
        )


class AuditOps:
    """The organisation's tamper-evident audit log (admins)."""

    def __init__(self, backend: Backend, portal: Portal) -> None:
        self._backend = backend
        self._portal = portal

    def entries(self, *, after: int = 0, limit: int = 100) -> builtins.list[AuditEntry]:
        """Entries after ``seq`` ``after``, oldest first, with their hashes."""
        return self._portal.call(self._backend.audit_entries(after=after, limit=limit))

    async def aentries(self, *, after: int = 0, limit: int = 100) -> builtins.list[AuditEntry]:
        return await self._portal.acall(self._backend.audit_entries(after=after, limit=limit))

    def verify(self) -> ChainReport:
        """Recompute the hash chain: ``ok``, or the first broken link and why."""
        return self._portal.call(self._backend.verify_audit())

    async def averify(self) -> ChainReport:
        return await self._portal.acall(self._backend.verify_audit())

    def export(self, out: IO[str], *, after: int = 0) -> int:
        """Write the log as JSON Lines to ``out``; returns how many entries."""
        return self._portal.call(self._export(out, after))

    async def aexport(self, out: IO[str], *, after: int = 0) -> int:
        return await self._portal.acall(self._export(out, after))

    async def _export(self, out: IO[str], after: int) -> int:
        count = 0
        while True:
            page = await self._backend.audit_entries(after=after, limit=1_000)
            for entry in page:
                out.write(entry.line() + "\n")
            count += len(page)
            if len(page) < 1_000:
                return count
            after = page[-1].seq


def _spec(spec: TaskSpec | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> Any:
    if spec is None:
        return dict(fields)
    if fields:
        raise TypeError("pass a spec or keyword fields, not both")
    return spec


def _action(action: Action | Mapping[str, Any] | str, args: Mapping[str, Any] | None) -> Any:
    if isinstance(action, str):
        return {"name": action, "args": dict(args or {})}
    if args is not None:
        raise TypeError("give args inside the action, or name the action as a string")
    return action


class Handrail:
    """Ask humans for decisions and answers; or, as a reviewer, give them.

    ``Handrail(url, api_key)`` talks to a Handrail server (:meth:`from_env` reads both
    from ``HANDRAIL_URL`` and ``HANDRAIL_API_KEY``); :meth:`local` runs the engine in this
    process. Either way the methods are the same. Use it as a context manager, or call
    :meth:`close`.

    Over HTTP, ``timeout`` bounds each ordinary request (long-polls run longer), ``retry``
    says how failed requests are retried (see :class:`RetryPolicy`), and ``transport``
    replaces httpx's network transport (for tests). ``backend`` and ``portal`` build a
    client over a backend of your own instead.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend | None = None,
        portal: Portal | None = None,
        on_close: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        if backend is not None:
            if url is not None or api_key is not None:
                raise TypeError("give a server's url and api_key, or a backend, not both")
            if portal is None:
                raise TypeError("a backend runs on a portal: pass portal= too")
        else:
            if url is None:
                raise TypeError(
                    "Handrail needs the server's url and an api_key: Handrail(url, api_key); "
                    "or use Handrail.from_env() or Handrail.local()"
                )
            if api_key is None:
                raise TypeError(
                    "Handrail(url, api_key) needs an api_key (hr_live_... or hr_test_...)"
                )
            if portal is not None:
                raise TypeError("a client over HTTP runs on a portal of its own: drop portal=")
            http = HttpBackend(url, api_key, timeout=timeout, retry=retry, transport=transport)
            portal, backend, then = Portal(), http, on_close

            async def close_http() -> None:
                try:
                    await http.aclose()
                finally:
                    if then is not None:
                        await then()

            on_close = close_http
        self._backend = backend
        self._portal = portal
        self._on_close = on_close
        self.tasks = Tasks(backend, portal)
        self.ledger = LedgerOps(backend, portal)
        self.policy = PolicyOps(backend, portal)
        self.audit = AuditOps(backend, portal)

    @classmethod
    def from_env(
        cls,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Handrail:
        """A client of the server at ``HANDRAIL_URL`` with the key in ``HANDRAIL_API_KEY``."""
        url = os.environ.get("HANDRAIL_URL", "").strip()
        api_key = os.environ.get("HANDRAIL_API_KEY", "").strip()
        missing = [
            name
            for name, value in (("HANDRAIL_URL", url), ("HANDRAIL_API_KEY", api_key))
            if not value
        ]
        if missing:
            raise ValueError(
                f"Handrail.from_env() needs {' and '.join(missing)} set "
                "(the server's URL, e.g. http://127.0.0.1:8000, and an API key)"
            )
        return cls(url, api_key, timeout=timeout, retry=retry, transport=transport)

    @classmethod
    def local(
        cls,
        path: str | Path | None = None,
        *,
        org: str = "local",
        user: str = "local",
        sandbox: SandboxReviewer | bool = False,
        clock: Clock | None = None,
        verifier: Verifier | None = None,
        fees: FeeSchedule | None = None,
        hold_period: timedelta = timedelta(days=7),
        payout_rail: PayoutRail | None = None,
        sweep_interval: float | None = 1.0,
        token_secret: str | bytes | None = None,
    ) -> Handrail:
        """An in-process engine: in memory, or in the SQLite file at ``path``.

        The client acts as ``user`` of organisation ``org`` with every role, but, like any
        requester, it cannot decide the reviews it asks for: decide them through
        :meth:`as_reviewer` (a reviewer's view of the same engine). ``token_secret`` signs
        decision tokens (default: a random one for this process). With ``sandbox``, tasks
        are created in sandbox mode and a :class:`SandboxReviewer` answers them. With a
        ``path``, waiters also wake on changes other processes make to the same file (a
        terminal reviewer).
        Paid tasks (with a ``payout``) hold money in the ledger: deposit first
        (``hr.ledger.deposit``; sandbox credit in sandbox mode). ``fees``, ``hold_period``
        and ``payout_rail`` configure it. Every ``sweep_interval`` seconds a background job
        enforces SLAs (backup slots, re-routing, expiry) and settles earnings whose hold
        period is over.
        """
        portal = Portal()
        principal = Principal(
            org_id=org,
            id=user,
            roles=frozenset({Role.REQUESTER, Role.REVIEWER, Role.ADMIN}),
            sandbox=bool(sandbox),
        )
        reviewer = SandboxReviewer() if sandbox is True else sandbox or None

        async def build() -> tuple[Runtime, builtins.list[Any]]:
            runtime = await open_runtime(
                None if path is None else Path(path),
                clock=clock,
                verifier=verifier,
                fees=fees,
                hold_period=hold_period,
                payout_rail=payout_rail,
                tokens=DecisionTokens(token_secret) if token_secret else None,
                sweep_interval=sweep_interval or None,
            )
            background: builtins.list[Any] = []
            if reviewer is not None:
                background.append(portal.spawn(reviewer.run(runtime.engine, org)))
            return runtime, background

        try:
            runtime, background = portal.call(build())
        except BaseException:
            portal.close()
            raise
        engine, ledger = runtime.engine, runtime.ledger

        async def shutdown() -> None:
            for job in background:
                job.cancel()
            await runtime.aclose()

        return cls(
            backend=LocalBackend(engine, principal, ledger), portal=portal, on_close=shutdown
        )

    def as_reviewer(self, reviewer_id: str) -> Handrail:
        """A view of this client acting as reviewer ``reviewer_id`` (sharing its engine).

        Only in-process: over HTTP the API key decides who acts, so this raises
        ``NotImplementedError``; make a client with the reviewer's key instead."""
        return Handrail(backend=self._backend.as_reviewer(reviewer_id), portal=self._portal)

    @property
    def principal_id(self) -> str:
        return self._backend.principal_id

    # ---------------------------------------------------------------- review

    def review(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        confidence: float | None = None,
        allowed: Sequence[DecisionType | str] | None = None,
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
        **fields: Any,
    ) -> Decision:
        """Ask a human to approve ``action`` and block until they decide.

        Returns the reviewer's :class:`Decision`. If nobody decides within ``timeout``
        seconds (or before the task's SLA), the review is cancelled and, with
        ``on_timeout="reject"``, a reject decision saying so comes back; with ``"raise"``,
        ``WaitTimeout`` is raised. Other failures raise. No path returns an approval that
        a reviewer did not give. Extra keywords (``title``, ``payload``, ``risk_tier``,
        ``sla_seconds``, ``idempotency_key``, ...) go into the task.
        """
        return self._portal.call(
            self._review(action, args, reasoning, confidence, allowed, timeout, on_timeout, fields)
        )

    async def areview(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        confidence: float | None = None,
        allowed: Sequence[DecisionType | str] | None = None,
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
        **fields: Any,
    ) -> Decision:
        return await self._portal.acall(
            self._review(action, args, reasoning, confidence, allowed, timeout, on_timeout, fields)
        )

    async def _review(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None,
        reasoning: str | None,
        confidence: float | None,
        allowed: Sequence[DecisionType | str] | None,
        timeout: float | None,
        on_timeout: OnTimeout,
        fields: Mapping[str, Any],
    ) -> Decision:
        if on_timeout not in ("reject", "raise"):
            raise ValueError("on_timeout must be 'reject' or 'raise'")
        spec: dict[str, Any] = {
            **fields,
            "kind": Kind.REVIEW,
            "action": _action(action, args),
            "agent_reasoning": reasoning,
            "confidence": confidence,
        }
        if allowed is not None:
            spec["allowed_decisions"] = tuple(allowed)
        created = await self._backend.create(spec)
        task = await self._finish(created, timeout, on_timeout)
        if task is None:
            return _refused(NO_ANSWER_IN_TIME, ReasonCode.TIMEOUT)
        return decision_of(task, self._backend.now())

    async def _finish(
        self, task: Task, timeout: float | None, on_timeout: OnTimeout
    ) -> Task | None:
        """Wait for ``task`` to end. On timeout withdraw it and return None (or raise with
        ``on_timeout="raise"``), unless a decision beat the withdrawal: then that counts."""
        try:
            task = await self._backend.wait(task.id, timeout)
        except WaitTimeout:
            try:
                await self._backend.cancel(task.id, "the agent stopped waiting")
            except InvalidTransition:
                return await self._backend.get(task.id)  # decided or expired meanwhile
            if on_timeout == "raise":
                raise
            return None
        if task.status is Status.EXPIRED and on_timeout == "raise":
            raise WaitTimeout(task.id, float(task.sla_seconds), task.status.value)
        return task

    # ---------------------------------------------------------------- ask

    def ask(
        self,
        question: str,
        output_schema: Mapping[str, Any],
        *,
        payload: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        """Put a judgment to a human and block until a verified answer fits ``output_schema``.

        Raises ``NoAnswer`` when the task fails, expires or is cancelled, and
        ``WaitTimeout`` (after withdrawing the task) when ``timeout`` passes.
        """
        return self._portal.call(self._ask(question, output_schema, payload, timeout, fields))

    async def aask(
        self,
        question: str,
        output_schema: Mapping[str, Any],
        *,
        payload: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        return await self._portal.acall(
            self._ask(question, output_schema, payload, timeout, fields)
        )

    async def _ask(
        self,
        question: str,
        output_schema: Mapping[str, Any],
        payload: Mapping[str, Any] | None,
        timeout: float | None,
        fields: Mapping[str, Any],
    ) -> Any:
        spec = {
            "task_type": "judgment",
            **fields,
            "kind": Kind.JUDGMENT,
            "title": question,
            "output_schema": dict(output_schema),
            "payload": dict(payload or {}),
        }
        task = await self._finish(await self._backend.create(spec), timeout, "raise")
        assert task is not None  # with "raise", a timeout raises instead
        if task.status is not Status.VERIFIED:
            raise NoAnswer(task.id, task.status.value, task.failure_reason)
        return task.output

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Stop background work and release the store, or the HTTP connections (views made
        by ``as_reviewer`` share them and need no closing)."""
        if self._on_close is not None:
            hook, self._on_close = self._on_close, None
            try:
                self._portal.call(hook())
            finally:
                self._portal.close()

    async def aclose(self) -> None:
        if self._on_close is not None:
            hook, self._on_close = self._on_close, None
            try:
                await self._portal.acall(hook())
            finally:
                self._portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
