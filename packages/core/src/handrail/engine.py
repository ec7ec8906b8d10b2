"""The engine: every task operation, over a store, in one transaction each.

Each operation reads the task, checks who is asking, applies one or more lifecycle
transitions (``handrail.lifecycle``), appends them to the history, lets the escrow move
money for them, and writes the task back with an optimistic version check. When two
writers race, the loser re-reads and re-decides: so of two workers claiming the last slot
at once, exactly one wins and the other gets ``InvalidTransition``. Waiters are woken after
the commit, through the waker.

Every method takes the acting :class:`Principal`; objects of another organisation are
``NotFound``.

Policies are enforced here, so every path (the Python client, the HTTP API, adapters,
decision links) obeys them: a new review is judged by its organisation's policy (allowed
or denied at once, covered by a standing approval, or asked of eligible reviewers under a
quorum); a decision counts only from a reviewer the policy allows (never the review's own
requester), and a refused one is recorded in the audit log; an edit is re-checked.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import logging
import random
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import Any

from ._jsonpatch import diff
from ._jsonschema import validate_instance
from ._redact import redact_event_data, unmask_args
from ._retry import backoff, retry_conflicts
from ._steps import (
    Step,
    already_answered,
    answered,
    check_decision,
    claim,
    enum_value,
    need_text,
    replace,
)
from .audit import AuditEntry, AuditRecord, ChainReport, ChainVerifier
from .authority import (
    authority_problem,
    eligible,
    groups_of,
    members,
    policy_verification,
    sealed,
    standing_cover,
    system_decision,
    tally,
    widened,
    with_terms,
)
from .clock import Clock, SystemClock
from .errors import (
    ConcurrencyConflict,
    EditDenied,
    IdempotencyConflict,
    InvalidTransition,
    NotAssigned,
    NotEligible,
    NotFound,
    PermissionDenied,
    TokenRejected,
    ValidationError,
    WaitTimeout,
)
from .escrow import Escrow, NoEscrow
from .hooks import Hook
from .ids import new_id
from .ledger import Ledger
from .lifecycle import EXPIRABLE, Event, Status
from .models import (
    Assignment,
    AssignmentStatus,
    Decision,
    DecisionType,
    Estimate,
    Kind,
    Page,
    Principal,
    ReasonCode,
    ReviewPolicy,
    RiskTier,
    Role,
    RuleOutcome,
    StageResult,
    Task,
    TaskEvent,
    TaskSpec,
    Verification,
)
from .money import Money
from .pipeline import Pipeline
from .policy import (
    CompiledPolicy,
    Explanation,
    Policy,
    ReviewerGroup,
    StandingApproval,
    Subject,
)
from .session import Session
from .store import PolicyContext, Store, TaskQuery, Transaction
from .tokens import DecisionTokens, TokenClaims
from .validation import parse, spec_issues
from .verification import Verifier
from .wake import LocalWaker, Waker, org_channel, task_channel
from .workers import WorkerProfile, WorkerStats

__all__ = ["Engine"]

log = logging.getLogger(__name__)

SYSTEM = "system"
BACKUP_AT = 0.8  # share of the SLA after which a backup worker is added
MAX_PAGE = 500
COMPILED_KEPT = 256  # compiled policies cached, one per (organisation, version)
AUDIT_PAGE = 1_000
_LATER_FIELDS = ("answer_ttl_seconds", "redact")  # fields added after tasks were first stored


def _fingerprint(spec: TaskSpec) -> str:
    # fields added later count only when set, so a replay of an older request still matches
    unset = {f for f in _LATER_FIELDS if getattr(spec, f) == TaskSpec.model_fields[f].default}
    body = spec.model_dump(mode="json", exclude={"idempotency_key", *unset})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


Op = Callable[[Step, Transaction], Awaitable[None]]


class Engine:
    """Task operations over a :class:`~handrail.store.Store`.

    ``verifier`` judges submitted answers (default: the verification pipeline), ``escrow``
    moves money at lifecycle points (default: none), ``waker`` wakes waiters (default:
    in-process), ``clock`` tells the time (default: the system's).
    ``hooks`` run inside each change's transaction (see ``handrail.hooks``);
    ``observers`` are told ``(before, after)`` after each change commits (``before`` is None
    for a new task), in this process, for in-memory views such as a router's loads.
    ``wait_backstop`` bounds how long a waiter trusts notifications alone before it
    re-reads the task anyway; it is a safety net, not how waiters normally wake.
    ``tokens`` signs and reads decision tokens (links in emails and chat messages); without
    it, minting or redeeming one raises ``TokenRejected("unavailable")``.
    """

    def __init__(
        self,
        store: Store,
        *,
        waker: Waker | None = None,
        clock: Clock | None = None,
        verifier: Verifier | None = None,
        escrow: Escrow | None = None,
        hooks: Sequence[Hook] = (),
        observers: Sequence[Callable[[Task | None, Task], None]] = (),
        max_retries: int = 50,
        wait_backstop: float = 5.0,
        tokens: DecisionTokens | None = None,
    ) -> None:
        self.store = store
        self.waker: Waker = waker or LocalWaker()
        self.clock: Clock = clock or SystemClock()
        self.verifier: Verifier = verifier or Pipeline()
        self.escrow: Escrow = escrow or NoEscrow()
        learner = [self.verifier] if isinstance(self.verifier, Hook) else []
        self.hooks: tuple[Hook, ...] = (self.escrow, *learner, *hooks)
        self.observers = list(observers)
        self._max_retries = max_retries
        self._wait_backstop = wait_backstop
        self.tokens = tokens
        self._compiled: dict[str, CompiledPolicy] = {}  # by organisation: its newest policy

    async def aclose(self) -> None:
        await self.waker.aclose()
        await self.store.close()

    # ------------------------------------------------------------------ requester side

    async def create(self, principal: Principal, spec: TaskSpec | Mapping[str, Any]) -> Task:
        """Post a task. With an ``idempotency_key``, repeating the same request returns the
        same task; the same key with a different request raises ``IdempotencyConflict``."""
        self._require(principal, Role.REQUESTER, "create tasks")
        spec = parse(TaskSpec, spec)
        if spec.gold_answer is not None:
            self._require(principal, Role.ADMIN, "create gold tasks")
        issues = spec_issues(spec)
        if issues:
            raise ValidationError(issues, summary="invalid task")
        fingerprint = _fingerprint(spec)
        for attempt in range(self._max_retries):
            try:
                async with self.store.transaction() as tx:
                    if spec.idempotency_key is not None:
                        existing = await tx.find_by_key(principal.org_id, spec.idempotency_key)
                        if existing is not None:
                            if existing.request_fingerprint != fingerprint:
                                raise IdempotencyConflict(spec.idempotency_key, existing.id)
                            return _shown(principal, existing)
                    task = self.verifier.plan(self._new_task(principal, spec, fingerprint))
                    found: Explanation | None = None
                    context: PolicyContext | None = None
                    if task.action is not None:  # a review: its organisation's policy judges it
                        context = await tx.policy_context(
                            task.org_id,
                            task.action.name,
                            task.created_at,
                            known_version=self._known_version(task.org_id),
                        )
                        found = self._compiled_for(task.org_id, context).evaluate(Subject.of(task))
                        task = with_terms(task, found)
                    await tx.insert_task(task)
                    await tx.append_events([self._created_event(task, principal, found)])
                    for hook in self.hooks:  # the escrow may refuse: that undoes it all
                        await hook.on_create(tx, task)
                    if found is not None and context is not None:
                        step = Step(task, actor=SYSTEM, role=SYSTEM, now=task.created_at)
                        _decide_by_policy(step, found, context)
                        await self._save(tx, task, step)
                        task = step.task
            except ConcurrencyConflict:
                await backoff(attempt)
                continue
            await self._publish(None, task)
            return _shown(principal, task)
        raise ConcurrencyConflict("task", spec.idempotency_key or "new")

    def _known_version(self, org_id: str) -> int | None:
        compiled = self._compiled.get(org_id)
        return compiled.policy.version if compiled is not None else None

    def _compiled_for(self, org_id: str, context: PolicyContext) -> CompiledPolicy:
        """The organisation's newest policy, compiled once per version (saved versions
        never change, so the store sends the rules only when the version is new here)."""
        held = self._compiled.get(org_id)
        if held is not None and held.policy.version == context.version:
            return held
        policy = context.policy or Policy()
        if policy.version != context.version:  # the context left out a version we lack
            raise ConcurrencyConflict("policy", org_id)
        if len(self._compiled) >= COMPILED_KEPT:
            self._compiled.clear()
        compiled = self._compiled[org_id] = CompiledPolicy(policy)
        return compiled

    def _new_task(self, principal: Principal, spec: TaskSpec, fingerprint: str) -> Task:
        now = self.clock.now()
        fields = spec.model_dump(exclude={"task_type", "title"})
        return Task.model_validate(
            {
                **fields,
                "id": new_id(),
                "org_id": principal.org_id,
                "task_type": spec.effective_task_type,
                "title": spec.effective_title,
                "sandbox": principal.sandbox,
                "created_by": principal.id,
                "request_fingerprint": fingerprint,
                "reached_at": {Status.POSTED: now},
                "created_at": now,
                "updated_at": now,
                "expires_at": now + timedelta(seconds=spec.sla_seconds),
                "backup_at": now + timedelta(seconds=spec.sla_seconds * BACKUP_AT),
                "max_answers": spec.max_answers or spec.redundancy,
            }
        )

    def _created_event(
        self, task: Task, principal: Principal, found: Explanation | None
    ) -> TaskEvent:
        data: dict[str, Any] = {}
        if principal.key_id is not None:
            data["key_id"] = principal.key_id
        if found is not None:  # what the policy made of the review, in its history and audit
            data["policy"] = {
                "outcome": found.outcome.value,
                "rule_id": found.rule_id,
                "version": found.terms.policy_version,
                "error": found.error,
            }
        return TaskEvent(
            id=new_id(),
            task_id=task.id,
            org_id=task.org_id,
            at=task.created_at,
            actor=principal.id,
            actor_role=Role.REQUESTER.value,
            event=Event.CREATE,
            from_status=None,
            to_status=Status.POSTED,
            data=data,
        )

    async def get(self, principal: Principal, task_id: str) -> Task:
        async with self.store.transaction(readonly=True) as tx:
            task = await tx.get_task(principal.org_id, task_id)
        if task is None:
            raise NotFound("task", task_id)
        return _shown(principal, task)

    async def history(self, principal: Principal, task_id: str) -> builtins.list[TaskEvent]:
        """The task's audit trail, oldest first."""
        async with self.store.transaction(readonly=True) as tx:
            if await tx.get_task(principal.org_id, task_id) is None:
                raise NotFound("task", task_id)
            return await tx.list_events(principal.org_id, task_id)

    async def list(
        self,
        principal: Principal,
        *,
        status: Status | str | builtins.list[Status | str] | None = None,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        batch_id: str | None = None,
        after: str | None = None,
        limit: int = 50,
        newest_first: bool = False,
    ) -> Page:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError.at("$.limit", f"must be between 1 and {MAX_PAGE}")
        statuses = [status] if isinstance(status, str) else status
        query = TaskQuery(
            statuses=frozenset(enum_value(Status, s, "$.status") for s in statuses)
            if statuses
            else None,
            kind=enum_value(Kind, kind, "$.kind") if kind is not None else None,
            task_type=task_type,
            batch_id=batch_id,
            after=after,
            limit=limit + 1,
            newest_first=newest_first,
        )
        async with self.store.transaction(readonly=True) as tx:
            tasks = await tx.list_tasks(principal.org_id, query)
        more = len(tasks) > limit
        items = tuple(_shown(principal, t) for t in tasks[:limit])
        return Page(items=items, next_cursor=items[-1].id if more else None)

    async def cancel(self, principal: Principal, task_id: str, reason: str | None = None) -> Task:
        """Withdraw a task nobody has answered. Cancelling a cancelled task changes nothing."""
        self._require(principal, Role.REQUESTER, "cancel tasks")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.status is Status.CANCELLED:
                return
            if task.answers():  # work was done: it is verified, failed or disputed instead
                raise InvalidTransition(
                    task.id, task.status.value, "cancel", detail="an answer is already in"
                )
            step.move(Event.CANCEL, reason=reason, assignments=_released(task, step.now))

        return await self._mutate(principal, task_id, Event.CANCEL, op, Role.REQUESTER)

    async def approve_estimate(self, principal: Principal, task_id: str) -> Task:
        """Accept the pending estimate: its worker holds the task, at the estimated price."""
        self._require(principal, Role.REQUESTER, "approve estimates")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            estimate = task.estimate
            if estimate is None or task.status is not Status.ESTIMATE_PENDING:
                raise InvalidTransition(task.id, task.status.value, Event.APPROVE_ESTIMATE.value)
            holder = Assignment(worker_id=estimate.worker_id, claimed_at=step.now)
            step.move(
                Event.APPROVE_ESTIMATE,
                assignments=(*task.assignments, holder),
                payout=estimate.amount or task.payout,
                data={"worker_id": estimate.worker_id},
            )

        return await self._mutate(principal, task_id, Event.APPROVE_ESTIMATE, op, Role.REQUESTER)

    async def reject_estimate(
        self, principal: Principal, task_id: str, reason: str | None = None
    ) -> Task:
        self._require(principal, Role.REQUESTER, "reject estimates")

        async def op(step: Step, tx: Transaction) -> None:
            rejected = step.task.estimate
            step.move(
                Event.REJECT_ESTIMATE,
                reason=reason,
                estimate=None,
                data={"estimate": rejected.model_dump(mode="json") if rejected else None},
            )

        return await self._mutate(principal, task_id, Event.REJECT_ESTIMATE, op, Role.REQUESTER)

    async def dispute(self, principal: Principal, task_id: str, reason: str) -> Task:
        """Contest a verified result; an admin resolves it with :meth:`resolve_dispute`."""
        self._require(principal, Role.REQUESTER, "dispute tasks")
        reason = need_text(reason, "$.reason")

        async def op(step: Step, tx: Transaction) -> None:
            step.move(Event.DISPUTE, reason=reason)

        return await self._mutate(principal, task_id, Event.DISPUTE, op, Role.REQUESTER)

    async def wait(self, principal: Principal, task_id: str, timeout: float | None = None) -> Task:
        """The task once it is terminal (verified, failed, expired or cancelled).

        Wakes within milliseconds of the change. With ``timeout`` None, waits until the
        task's deadline, when it expires. Raises ``WaitTimeout`` after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self.waker.subscribe([task_channel(task_id)]) as sub:
            while True:
                task = await self.get(principal, task_id)
                if task.terminal:
                    return task
                until_due = (task.expires_at - self.clock.now()).total_seconds()
                if task.status in EXPIRABLE and until_due <= 0:
                    # due: re-routed (keep waiting) or expired (returned next time round)
                    with contextlib.suppress(InvalidTransition, NotFound):
                        await self._lapse_one(task)
                    continue
                pause = min(self._backstop(), max(until_due, 0.0))
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        raise WaitTimeout(task_id, timeout or 0.0, task.status.value)
                    pause = min(pause, left)
                await sub.wait(pause)

    async def events(
        self, principal: Principal, after: int | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        """Every history entry of the principal's organisation after sequence number
        ``after`` (None: from now on), in order, as committed; it never ends. The position
        is fixed (and the subscription open) when this returns."""
        feed = self.event_feed(principal, after)
        await anext(feed)
        return _events_only(feed)

    async def event_feed(
        self, principal: Principal, after: int | None = None, *, idle: float | None = None
    ) -> AsyncGenerator[TaskEvent | None, None]:
        """What :meth:`events` gives, with ``None`` first (subscribed, position fixed) and
        then after every ``idle`` seconds with nothing new (a stream's keepalive)."""
        org = principal.org_id
        async with self.waker.subscribe([org_channel(org)]) as sub:
            position = await self.store.last_seq() if after is None else after
            yield None
            while True:
                async with self.store.transaction(readonly=True) as tx:
                    found = await tx.org_events(org, position, EVENT_BATCH)
                for event in found:
                    position = event.seq or position
                    yield event
                if found:
                    continue
                woke = await sub.wait(self._backstop() if idle is None else idle)
                if not woke and idle is not None:
                    yield None

    # ------------------------------------------------------------------ worker side

    async def queue(
        self,
        principal: Principal,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
    ) -> builtins.list[Task]:
        """Tasks this worker could take now, soonest deadline first, then highest risk: only
        those its profile (if it has one) allows, and none while it is at capacity."""
        self._require(principal, Role.REVIEWER, "see the work queue")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError.at("$.limit", f"must be between 1 and {MAX_PAGE}")
        kind_ = enum_value(Kind, kind, "$.kind") if kind is not None else None
        risk = enum_value(RiskTier, risk_tier, "$.risk_tier") if risk_tier is not None else None
        async with self.store.transaction(readonly=True) as tx:
            profile = await tx.get_worker(principal.org_id, principal.id)
            if profile is not None:
                load = await tx.active_load(principal.org_id, principal.id)
                if not profile.active or load >= profile.capacity:
                    return []
            groups = groups_of(await tx.list_groups(principal.org_id), principal.id)
            found = await tx.open_tasks(
                principal.org_id,
                now=self.clock.now(),
                exclude_worker=principal.id,
                kind=kind_,
                task_type=task_type,
                risk_tier=risk,
                limit=limit,
                task_types=profile.skills or None if profile else None,
                max_risk=profile.trust_tier if profile else None,
                groups=groups,
            )
        return [_shown(principal, t) for t in found]

    async def wait_for_work(
        self,
        principal: Principal,
        timeout: float | None = None,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
        skip: Collection[str] = (),
    ) -> builtins.list[Task]:
        """The worker's queue, less the ids in ``skip``, as soon as that is not empty;
        ``[]`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self.waker.subscribe([org_channel(principal.org_id)]) as sub:
            while True:
                found = await self.queue(
                    principal, kind=kind, task_type=task_type, risk_tier=risk_tier, limit=limit
                )
                found = [t for t in found if t.id not in skip]
                if found:
                    return found
                pause = self._backstop()
                if deadline is not None:
                    pause = min(pause, deadline - loop.time())
                    if pause <= 0:
                        return []
                await sub.wait(pause)

    async def claim(self, principal: Principal, task_id: str) -> Task:
        """Take a slot on a task. Claiming a task one already holds changes nothing. Only a
        reviewer who may decide a review may claim it."""

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.active_assignment(principal.id) is None:
                await self._check_worker(tx, step.task, principal.id)
                claim(step, principal.id)

        return await self._refusable(
            principal,
            task_id,
            "claim tasks",
            lambda: self._mutate(principal, task_id, Event.CLAIM, op, Role.REVIEWER),
        )

    async def assign(self, principal: Principal, task_id: str, worker_id: str) -> Task:
        """Push a task to a worker (the router's choice): a claim made on its behalf."""
        self._require(principal, Role.ADMIN, "assign tasks")

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.active_assignment(worker_id) is None:
                await self._check_worker(tx, step.task, worker_id)
                claim(step, worker_id, pushed_by=principal.id)

        return await self._mutate(principal, task_id, Event.CLAIM, op, Role.ADMIN)

    async def _check_worker(self, tx: Transaction, task: Task, worker_id: str) -> None:
        """A review only for a reviewer its policy allows (never its requester); and a
        worker with a profile takes only what its skills and trust tier allow, and no more
        tasks at once than its capacity."""
        await self._authorize(tx, task, worker_id)
        profile = await tx.get_worker(task.org_id, worker_id)
        if profile is None:
            return
        if not profile.can_do(task.task_type, task.risk_tier):
            why = f"its profile does not cover {task.task_type!r} at {task.risk_tier.value} risk"
            raise PermissionDenied(worker_id, f"take task {task.id}", why)
        load = await tx.active_load(task.org_id, worker_id)
        if load >= profile.capacity:
            raise PermissionDenied(
                worker_id, f"take task {task.id}", f"it holds {load} of {profile.capacity} tasks"
            )

    async def release(self, principal: Principal, task_id: str, reason: str | None = None) -> Task:
        """Give a claimed slot back, unanswered."""
        self._require(principal, Role.REVIEWER, "release tasks")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            held = task.active_assignment(principal.id)
            if held is None:
                raise NotAssigned(task.id, principal.id)
            released = held.model_copy(
                update={"status": AssignmentStatus.RELEASED, "released_at": step.now}
            )
            assignments = replace(task.assignments, held, released)
            still = any(a.holds_slot for a in assignments)
            target = Status.ASSIGNED if still else Status.POSTED
            step.move(Event.RELEASE, target, reason=reason, assignments=assignments)

        return await self._mutate(principal, task_id, Event.RELEASE, op, Role.REVIEWER)

    async def offer_estimate(
        self,
        principal: Principal,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task:
        """Offer to do an estimate-first task for ``amount`` within ``eta_seconds``."""
        self._require(principal, Role.REVIEWER, "offer estimates")
        if eta_seconds is not None and eta_seconds < 1:
            raise ValidationError.at("$.eta_seconds", "must be at least 1")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if not task.require_estimate:
                raise InvalidTransition(
                    task.id, task.status.value, "offer_estimate", detail="no estimate wanted"
                )
            if amount is not None and task.payout and amount.currency != task.payout.currency:
                raise ValidationError.at(
                    "$.amount.currency", f"the task pays in {task.payout.currency.value}"
                )
            offer = Estimate(
                worker_id=principal.id,
                amount=amount,
                eta_seconds=eta_seconds,
                note=note,
                offered_at=step.now,
            )
            step.move(
                Event.OFFER_ESTIMATE,
                estimate=offer,
                data={"estimate": offer.model_dump(mode="json")},
            )

        return await self._mutate(principal, task_id, Event.OFFER_ESTIMATE, op, Role.REVIEWER)

    async def withdraw_estimate(
        self, principal: Principal, task_id: str, reason: str | None = None
    ) -> Task:
        """Take back one's own pending estimate: the task is open to offers again."""
        self._require(principal, Role.REVIEWER, "withdraw estimates")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            offer = task.estimate
            if task.status is not Status.ESTIMATE_PENDING or offer is None:
                raise InvalidTransition(task.id, task.status.value, Event.WITHDRAW_ESTIMATE.value)
            if offer.worker_id != principal.id:
                raise PermissionDenied(
                    principal.id, f"withdraw the estimate on task {task.id}", "it is not theirs"
                )
            step.move(
                Event.WITHDRAW_ESTIMATE,
                reason=reason,
                estimate=None,
                data={"estimate": offer.model_dump(mode="json")},
            )

        return await self._mutate(principal, task_id, Event.WITHDRAW_ESTIMATE, op, Role.REVIEWER)

    async def submit(self, principal: Principal, task_id: str, output: Any) -> Task:
        """Answer a judgment task the worker holds. The answer must fit ``output_schema``.

        Submitting the same answer again changes nothing. On a review task, ``output`` is
        read as a decision (see :meth:`decide`).
        """

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.kind is Kind.REVIEW:
                decision = parse(Decision, output)
                await self._decide_op(step, tx, principal, decision)
                return
            if already_answered(task, principal.id, output):
                return
            validate_instance(output, task.output_schema, "$.output", "output does not fit")
            if task.active_assignment(principal.id) is None:
                raise NotAssigned(task.id, principal.id)
            await self._answer(step, tx, principal.id, output, _used(principal))

        return await self._refusable(
            principal,
            task_id,
            "submit answers",
            lambda: self._mutate(principal, task_id, Event.SUBMIT, op, Role.REVIEWER),
        )

    async def decide(
        self, principal: Principal, task_id: str, decision: Decision | Mapping[str, Any]
    ) -> Task:
        """Decide a review task: claim (when posted), record the decision, verify.

        On a task with one slot, posted → assigned → submitted → verified happens in one
        transaction. The same decision again by the same reviewer changes nothing.
        """
        parsed = parse(Decision, decision)

        async def op(step: Step, tx: Transaction) -> None:
            await self._decide_op(step, tx, principal, parsed)

        return await self._refusable(
            principal,
            task_id,
            "decide reviews",
            lambda: self._mutate(principal, task_id, Event.SUBMIT, op, Role.REVIEWER),
        )

    async def _decide_op(
        self,
        step: Step,
        tx: Transaction,
        principal: Principal,
        decision: Decision,
        token: TokenClaims | None = None,
    ) -> None:
        task = step.task
        worker = principal.id
        if task.kind is not Kind.REVIEW:
            raise ValidationError.at("$.kind", "decisions are for review tasks; submit an answer")
        # what the engine fills in is never taken from the caller
        decision = decision.model_copy(
            update={
                "reason_code": None,
                "rule_id": None,
                "standing_approval_id": None,
                "reviewers": (),
                "patch": None,
            }
        )
        check_decision(task, decision)
        await self._authorize(tx, task, worker)
        if decision.type is DecisionType.MODIFY:
            decision = await self._checked_edit(tx, task, worker, decision)
        if decision.expires_at is not None and decision.expires_at <= step.now:
            raise ValidationError.at("$.expires_at", "must be in the future")
        if decision.remember is not None:
            _check_rememberable(task)
        stamped = decision.model_copy(update={"reviewer_id": worker, "decided_at": step.now})
        done = task.assignment_of(worker)
        if done is not None and done.status is AssignmentStatus.SUBMITTED:
            if Decision.model_validate(done.output).content() == decision.content():
                return  # the same decision again: nothing to do
            raise InvalidTransition(
                task.id, task.status.value, "decide", detail=f"{worker} has already decided"
            )
        if task.active_assignment(worker) is None:
            await self._check_worker(tx, task, worker)
            claim(step, worker)
        used = _used(principal, token)
        output = stamped.model_dump(mode="json")
        if task.policy is not None and task.policy.quorum > 1:
            self._vote(step, worker, output, used)
        else:
            await self._answer(step, tx, worker, output, used)
        if decision.remember is not None and step.task.status is Status.VERIFIED:
            final = step.task.decision
            if final is not None and final.is_approval and final.reviewer_id == worker:
                await self._grant_standing(tx, step.task, worker, decision, step.now)

    async def _authorize(self, tx: Transaction, task: Task, reviewer: str) -> None:
        """Refuse (``NotEligible``) a reviewer the review's policy does not allow."""
        if task.kind is not Kind.REVIEW:
            return
        needs_groups = task.policy is not None and bool(task.policy.groups)
        groups = await tx.list_groups(task.org_id) if needs_groups else []
        why = authority_problem(task, reviewer, groups)
        if why is not None:
            raise NotEligible(reviewer, task.id, why)

    async def _checked_edit(
        self, tx: Transaction, task: Task, reviewer: str, decision: Decision
    ) -> Decision:
        """A modify, re-checked: masked values the reviewer sent back restored, the edited
        action evaluated against the policy again (a rule that would deny it, or that asks
        for other reviewers or a larger quorum, refuses the edit), and the edit recorded as
        a JSON Patch against the proposed arguments."""
        assert task.action is not None and decision.args is not None
        action = task.action
        args = unmask_args(decision.args, action.args, task.redact)
        tool = decision.tool if decision.tool not in (None, action.name) else None
        context = await tx.policy_context(
            task.org_id,
            tool or action.name,
            self.clock.now(),
            known_version=self._known_version(task.org_id),
        )
        compiled = self._compiled_for(task.org_id, context)
        if compiled.policy.rules:
            found = compiled.evaluate(Subject.of(task, tool=tool, args=args))
            terms = task.policy or ReviewPolicy()
            if found.outcome is RuleOutcome.DENY:
                why = f"policy rule {found.rule_id} denies the edited action"
                raise EditDenied(
                    task.id, found.rule_id, why + (f": {found.message}" if found.message else "")
                )
            if found.outcome is RuleOutcome.ASK and found.rule_id != terms.rule_id:
                need = found.terms
                if need.quorum > terms.quorum:
                    why = (
                        f"the edited action falls under policy rule {found.rule_id}, which "
                        f"needs {need.quorum} approvals"
                    )
                    raise EditDenied(task.id, found.rule_id, why)
                if need.groups:
                    groups = await tx.list_groups(task.org_id)
                    if reviewer not in members(groups, need.groups):
                        why = (
                            f"the edited action falls under policy rule {found.rule_id}, "
                            f"which only members of {', '.join(need.groups)} may approve"
                        )
                        raise EditDenied(task.id, found.rule_id, why)
        return decision.model_copy(
            update={"args": args, "tool": tool, "patch": tuple(diff(action.args, args))}
        )

    def _vote(self, step: Step, worker: str, output: Any, used: dict[str, Any]) -> None:
        """Record one reviewer's vote on a quorum review and settle it when the votes do:
        approved or rejected (verified by the quorum), or, with no voter left and nothing
        settled, to manual review."""
        task = step.task
        votes = answered(task, worker, step.now, output)
        voted = task.model_copy(update={"assignments": votes})
        count = tally(voted, step.now)
        data = {"worker_id": worker, "output": output, **used}
        if count.state == "open":
            step.move(Event.SUBMIT, Status.ASSIGNED, assignments=voted.assignments, data=data)
            return
        step.move(
            Event.SUBMIT,
            Status.SUBMITTED,
            assignments=_released(voted, step.now),
            data=data,
        )
        if count.decision is None:  # stuck: a person sorts it out
            stage = StageResult(
                name="quorum", verdict="uncertain", score=50, reasons=(count.summary,)
            )
            verdict = Verification(
                outcome="manual_review", score=50, stages=(stage,), reasons=(count.summary,)
            )
            step.move(
                Event.ESCALATE,
                verification=verdict,
                reason=count.summary,
                data={"score": 50, "stages": ["quorum"]},
                role=SYSTEM,
            )
            return
        final = sealed(step.task, count.decision, step.now)
        shown = final.model_dump(mode="json")
        stage = StageResult(name="quorum", verdict="pass", score=100, reasons=(count.summary,))
        step.move(
            Event.VERIFY,
            output=shown,
            verification=Verification(outcome="verified", score=100, stages=(stage,), output=shown),
            reason=count.summary,
            data={"score": 100, "stages": ["quorum"], "reviewers": list(final.reviewers)},
            role=SYSTEM,
        )

    async def _grant_standing(
        self, tx: Transaction, task: Task, reviewer: str, decision: Decision, now: datetime
    ) -> None:
        assert task.action is not None and decision.remember is not None
        remember = decision.remember
        approval = StandingApproval(
            id=new_id(),
            org_id=task.org_id,
            tool=task.action.name,
            when=remember.when,
            args=None if remember.when else task.action.args,
            granted_by=reviewer,
            task_id=task.id,
            rule_id=task.policy.rule_id if task.policy else None,
            created_at=now,
            expires_at=now + timedelta(seconds=remember.ttl_seconds),
        )
        await tx.put_standing(approval, expected_version=None)
        await tx.append_audit(
            [
                self._note(
                    org_id=task.org_id,
                    at=now,
                    kind="standing.granted",
                    actor=reviewer,
                    task_id=task.id,
                    data={
                        "standing_approval_id": approval.id,
                        "tool": approval.tool,
                        "when": approval.when,
                        "exact_args": approval.args is not None,
                        "expires_at": approval.expires_at.isoformat(),
                    },
                )
            ]
        )

    async def _answer(
        self,
        step: Step,
        tx: Transaction,
        worker: str,
        output: Any,
        used: dict[str, Any] | None = None,
    ) -> None:
        task = step.task
        assignments = answered(task, worker, step.now, output)
        answers = sum(1 for a in assignments if a.status is AssignmentStatus.SUBMITTED)
        complete = answers >= task.redundancy
        if complete:  # anyone still working on it (a backup) is let go
            assignments = _released(task.model_copy(update={"assignments": assignments}), step.now)
        step.move(
            Event.SUBMIT,
            Status.SUBMITTED if complete else Status.ASSIGNED,
            assignments=assignments,
            data={"worker_id": worker, "output": output, **(used or {})},
        )
        if complete:
            verification = await self.verifier.verify(tx, step.task)
            self._apply_verification(step, verification)

    def _apply_verification(self, step: Step, v: Verification) -> None:
        task = step.task
        if v.outcome == "repost" and task.attempt >= task.max_attempts:
            v = v.model_copy(update={"outcome": "failed"})  # no attempts left to repost into
        if v.outcome == "more_answers" and len(task.answers()) >= task.max_answers:
            v = v.model_copy(update={"outcome": "manual_review"})  # at the cap: a person decides
        data = {"score": v.score, "stages": [s.name for s in v.stages]}
        reason = "; ".join(v.reasons) or None
        if v.outcome == "verified" and task.kind is Kind.REVIEW and v.output is not None:
            final = sealed(task, Decision.model_validate(v.output), step.now)
            v = v.model_copy(update={"output": final.model_dump(mode="json")})
        if v.outcome == "verified":
            step.move(Event.VERIFY, verification=v, output=v.output, data=data, role=SYSTEM)
        elif v.outcome == "manual_review":
            step.move(Event.ESCALATE, verification=v, reason=reason, data=data, role=SYSTEM)
        elif v.outcome == "failed":
            step.move(
                Event.FAIL,
                verification=v,
                failure_reason=reason or "verification failed",
                reason=reason,
                data=data,
                role=SYSTEM,
            )
        elif v.outcome == "more_answers":  # the answers stay; one more slot opens
            step.move(
                Event.REPOST,
                verification=v,
                redundancy=step.task.redundancy + 1,
                reason=reason,
                data={**data, "more_answers": True},
                role=SYSTEM,
            )
        else:  # repost: a new attempt; the answers are set aside (they stay in the history)
            step.move(
                Event.REPOST,
                verification=v,
                assignments=_released(step.task, step.now, include_answers=True),
                attempt=step.task.attempt + 1,
                reason=reason,
                data=data,
                role=SYSTEM,
            )

    # ------------------------------------------------------------------ admin side

    async def verify(
        self, principal: Principal, task_id: str, output: Any = None, reason: str | None = None
    ) -> Task:
        """Pass a task in manual review. ``output`` picks the answer (it must fit the
        schema); without it the answers must agree."""

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.status is not Status.MANUAL_REVIEW:
                raise InvalidTransition(task.id, task.status.value, "verify")
            final = output
            if final is None:
                final = task.agreed_output()
                if final is None:
                    raise ValidationError.at("$.output", "answers differ: choose the output")
            elif task.kind is Kind.REVIEW:  # the checker decides: it must be allowed to
                await self._authorize(tx, task, principal.id)
                final = parse(Decision, final, "$.output").model_dump(mode="json")
            else:
                validate_instance(final, task.output_schema, "$.output", "output does not fit")
            if task.kind is Kind.REVIEW:
                chosen = Decision.model_validate(final)
                if chosen.reviewer_id is None:
                    chosen = chosen.model_copy(
                        update={"reviewer_id": principal.id, "decided_at": step.now}
                    )
                final = sealed(task, chosen, step.now).model_dump(mode="json")
            step.move(Event.VERIFY, output=final, reason=reason, data=_used(principal))

        return await self._refusable(
            principal,
            task_id,
            "verify tasks",
            lambda: self._mutate(principal, task_id, Event.VERIFY, op, Role.ADMIN),
            role=Role.ADMIN,
        )

    async def fail(self, principal: Principal, task_id: str, reason: str) -> Task:
        """Fail a task in manual review."""
        self._require(principal, Role.ADMIN, "fail tasks")
        reason = need_text(reason, "$.reason")

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.status is not Status.MANUAL_REVIEW:
                raise InvalidTransition(step.task.id, step.task.status.value, "fail")
            step.move(Event.FAIL, reason=reason, failure_reason=reason)

        return await self._mutate(principal, task_id, Event.FAIL, op, Role.ADMIN)

    async def resolve_dispute(
        self, principal: Principal, task_id: str, *, uphold: bool, reason: str
    ) -> Task:
        """Settle a dispute: ``uphold`` keeps the result verified, otherwise it fails."""
        self._require(principal, Role.ADMIN, "resolve disputes")
        reason = need_text(reason, "$.reason")
        event = Event.UPHOLD if uphold else Event.OVERTURN

        async def op(step: Step, tx: Transaction) -> None:
            if uphold:
                step.move(event, reason=reason)
            else:
                step.move(event, reason=reason, failure_reason=reason)

        return await self._mutate(principal, task_id, event, op, Role.ADMIN)

    # ------------------------------------------------------------------ workers

    async def put_worker(
        self, principal: Principal, profile: WorkerProfile | Mapping[str, Any]
    ) -> WorkerProfile:
        """Create or update a worker's profile in the principal's organisation (admins)."""
        self._require(principal, Role.ADMIN, "manage workers")
        data = profile.model_dump() if isinstance(profile, WorkerProfile) else dict(profile)
        data["org_id"] = principal.org_id
        wanted = parse(WorkerProfile, {k: v for k, v in data.items() if k != "version"})

        async def op(tx: Transaction) -> WorkerProfile:
            current = await tx.get_worker(principal.org_id, wanted.id)
            version = current.version + 1 if current else 1
            stored = wanted.model_copy(update={"version": version})
            await tx.put_worker(stored, expected_version=current.version if current else None)
            return stored

        async def attempt() -> WorkerProfile:
            async with self.store.transaction() as tx:
                return await op(tx)

        return await retry_conflicts(attempt)

    async def get_worker(self, principal: Principal, worker_id: str) -> WorkerProfile:
        if worker_id != principal.id:
            self._require(principal, Role.ADMIN, "see other workers")
        async with self.store.transaction(readonly=True) as tx:
            found = await tx.get_worker(principal.org_id, worker_id)
        if found is None:
            raise NotFound("worker", worker_id)
        return found

    async def list_workers(self, principal: Principal) -> builtins.list[WorkerProfile]:
        self._require(principal, Role.ADMIN, "list workers")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.list_workers(principal.org_id)

    async def worker_stats(
        self, principal: Principal, worker_id: str
    ) -> builtins.list[WorkerStats]:
        """What the engine learned about a worker, per task type (its own, or any for
        admins)."""
        if worker_id != principal.id:
            self._require(principal, Role.ADMIN, "see other workers")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.stats_of_worker(principal.org_id, worker_id)

    # ------------------------------------------------------------------ policies

    async def get_policy(self, principal: Principal) -> Policy:
        """The organisation's policy (an empty one, version 0, before any is saved)."""
        self._require(principal, Role.ADMIN, "read the policy")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.get_policy(principal.org_id) or Policy()

    async def put_policy(
        self,
        principal: Principal,
        policy: Policy | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Policy:
        """Save a new version of the organisation's policy (admins). With
        ``expected_version``, refuse (``ConcurrencyConflict``) if another was saved since.
        New reviews are judged by it at once; reviews already posted keep their terms."""
        self._require(principal, Role.ADMIN, "change the policy")
        wanted = parse(Policy, policy)
        rules = [r.model_dump(mode="json", exclude_defaults=True) for r in wanted.rules]
        digest = hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()

        async def attempt() -> Policy:
            async with self.store.transaction() as tx:
                current = await tx.get_policy(principal.org_id)
                version = current.version if current else 0
                if expected_version is not None and expected_version != version:
                    raise ConcurrencyConflict("policy", f"{principal.org_id} v{version}")
                saved = wanted.model_copy(
                    update={
                        "version": version + 1,
                        "updated_at": self.clock.now(),
                        "updated_by": principal.id,
                    }
                )
                await tx.put_policy(principal.org_id, saved)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            kind="policy.updated",
                            actor=principal.id,
                            data={
                                "version": saved.version,
                                "rules": len(saved.rules),
                                "sha256": digest,
                                "key_id": principal.key_id,
                            },
                        )
                    ]
                )
                return saved

        if expected_version is not None:
            return await attempt()
        return await retry_conflicts(attempt)

    async def explain_policy(
        self,
        principal: Principal,
        review: TaskSpec | Mapping[str, Any],
        *,
        policy: Policy | Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Dry run: what the policy (the saved one, or ``policy``) makes of ``review`` (a
        review task's spec), which rule matched and why, rule by rule. Nothing is saved."""
        self._require(principal, Role.ADMIN, "explain the policy")
        spec = parse(TaskSpec, review)
        if spec.action is None:
            raise ValidationError.at("$.action", "policies judge review tasks: give an action")
        if policy is not None:
            compiled = CompiledPolicy(parse(Policy, policy, "$.policy"))
        else:
            async with self.store.transaction(readonly=True) as tx:
                compiled = CompiledPolicy(await tx.get_policy(principal.org_id) or Policy())
        return compiled.evaluate(Subject.of(spec), explain=True)

    # ------------------------------------------------------------------ reviewer groups

    async def put_group(
        self,
        principal: Principal,
        name: str,
        members: Collection[str],
        description: str | None = None,
    ) -> ReviewerGroup:
        """Create or replace a reviewer group (admins)."""
        self._require(principal, Role.ADMIN, "manage reviewer groups")
        wanted = parse(
            ReviewerGroup,
            {
                "org_id": principal.org_id,
                "name": name,
                "members": list(members),
                "description": description,
            },
        )

        async def attempt() -> ReviewerGroup:
            async with self.store.transaction() as tx:
                current = {g.name: g for g in await tx.list_groups(principal.org_id)}.get(name)
                stored = wanted.model_copy(
                    update={"version": current.version + 1 if current else 1}
                )
                await tx.put_group(stored, expected_version=current.version if current else None)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            kind="group.updated",
                            actor=principal.id,
                            data={"group": name, "members": list(stored.members)},
                        )
                    ]
                )
                return stored

        return await retry_conflicts(attempt)

    async def list_groups(self, principal: Principal) -> builtins.list[ReviewerGroup]:
        self._require(principal, Role.ADMIN, "list reviewer groups")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.list_groups(principal.org_id)

    async def delete_group(self, principal: Principal, name: str) -> None:
        """Remove a reviewer group (admins): rules naming it then find nobody in it."""
        self._require(principal, Role.ADMIN, "manage reviewer groups")

        async def attempt() -> None:
            async with self.store.transaction() as tx:
                current = {g.name: g for g in await tx.list_groups(principal.org_id)}.get(name)
                if current is None:
                    raise NotFound("reviewer group", name)
                await tx.delete_group(principal.org_id, name, expected_version=current.version)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            kind="group.deleted",
                            actor=principal.id,
                            data={"group": name},
                        )
                    ]
                )

        await retry_conflicts(attempt)

    # ------------------------------------------------------------------ standing approvals

    async def list_standing(
        self, principal: Principal, *, active: bool = True
    ) -> builtins.list[StandingApproval]:
        """Standing approvals: an admin sees the organisation's, a reviewer its own;
        ``active`` leaves out revoked and expired ones."""
        if not principal.has(Role.ADMIN):
            self._require(principal, Role.REVIEWER, "list standing approvals")
        async with self.store.transaction(readonly=True) as tx:
            found = await tx.list_standing(
                principal.org_id, active_at=self.clock.now() if active else None
            )
        if principal.has(Role.ADMIN):
            return found
        return [a for a in found if a.granted_by == principal.id]

    async def revoke_standing(
        self, principal: Principal, approval_id: str, reason: str | None = None
    ) -> StandingApproval:
        """Revoke a standing approval (its granter, or an admin). Revoking it again
        changes nothing."""

        async def attempt() -> StandingApproval:
            async with self.store.transaction() as tx:
                current = await tx.get_standing(principal.org_id, approval_id)
                if current is None:
                    raise NotFound("standing approval", approval_id)
                if current.granted_by != principal.id:
                    self._require(principal, Role.ADMIN, "revoke others' standing approvals")
                if current.revoked_at is not None:
                    return current
                now = self.clock.now()
                revoked = current.model_copy(
                    update={
                        "revoked_at": now,
                        "revoked_by": principal.id,
                        "version": current.version + 1,
                    }
                )
                await tx.put_standing(revoked, expected_version=current.version)
                await tx.append_audit(
                    [
                        self._note(
                            org_id=principal.org_id,
                            at=now,
                            kind="standing.revoked",
                            actor=principal.id,
                            task_id=current.task_id,
                            data={"standing_approval_id": approval_id, "reason": reason},
                        )
                    ]
                )
                return revoked

        return await retry_conflicts(attempt)

    # ------------------------------------------------------------------ decision tokens

    def _token_signer(self) -> DecisionTokens:
        if self.tokens is None:
            raise TokenRejected("unavailable", "this engine has no decision-token secret")
        return self.tokens

    async def mint_decision_token(
        self,
        principal: Principal,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        """A single-use token that lets ``reviewer_id`` decide review ``task_id`` (and only
        as ``decision``, when given) until ``ttl_seconds`` from now: what an email or chat
        link carries (admins, or the server's notification worker). The reviewer must be allowed to
        decide the review now; redeeming checks again."""
        self._require(principal, Role.ADMIN, "mint decision tokens")
        signer = self._token_signer()
        if not 1 <= ttl_seconds <= 30 * 24 * 3600:
            raise ValidationError.at("$.ttl_seconds", "must be between 1 second and 30 days")
        kind = enum_value(DecisionType, decision, "$.decision") if decision else None
        async with self.store.transaction() as tx:
            task = await tx.get_task(principal.org_id, task_id)
            if task is None:
                raise NotFound("task", task_id)
            if task.kind is not Kind.REVIEW:
                raise ValidationError.at("$.task_id", "decision tokens are for review tasks")
            if kind is not None and kind not in task.allowed_decisions:
                raise ValidationError.at("$.decision", f"the task does not allow {kind.value}")
            await self._authorize(tx, task, reviewer_id)
            now = self.clock.now()
            token, claims = signer.mint(
                org_id=task.org_id,
                task_id=task.id,
                reviewer_id=reviewer_id,
                expires_at=now + timedelta(seconds=ttl_seconds),
                decision=kind,
            )
            await tx.append_audit(
                [
                    self._note(
                        org_id=task.org_id,
                        at=now,
                        kind="token.minted",
                        actor=principal.id,
                        task_id=task.id,
                        data={
                            "token_id": claims.id,
                            "reviewer_id": reviewer_id,
                            "decision": kind.value if kind else None,
                            "expires_at": claims.expires_at.isoformat(),
                        },
                    )
                ]
            )
        return token, claims

    async def redeem_decision_token(
        self,
        token: str,
        decision: Decision | Mapping[str, Any],
        *,
        task_id: str | None = None,
    ) -> Task:
        """Decide a review with a decision token: as the reviewer it names, under every
        rule a decision by that reviewer obeys. ``task_id`` (the task the link was for)
        must match the token's. The token is spent with the decision; one that is forged,
        expired, spent, for another task or another decision raises ``TokenRejected`` and
        changes nothing."""
        signer = self._token_signer()
        claims = signer.read(token, self.clock.now())
        reviewer = Principal(
            org_id=claims.org_id, id=claims.reviewer_id, roles=frozenset({Role.REVIEWER})
        )
        parsed = parse(Decision, decision)

        async def op(step: Step, tx: Transaction) -> None:
            if await tx.token_spent(claims.id):
                raise TokenRejected("used", "this decision token was used already")
            await tx.spend_token(claims.org_id, claims.id, claims.task_id, step.now)
            await self._decide_op(step, tx, reviewer, parsed, claims)

        async def run() -> Task:
            if task_id is not None and task_id != claims.task_id:
                raise TokenRejected("wrong_task", "this decision token is for another task")
            if claims.decision is not None and parsed.type is not claims.decision:
                raise TokenRejected(
                    "wrong_decision", f"this decision token can only {claims.decision.value}"
                )
            return await self._mutate(reviewer, claims.task_id, Event.SUBMIT, op, Role.REVIEWER)

        return await self._refusable(reviewer, claims.task_id, "decide by token", run)

    # ------------------------------------------------------------------ audit

    async def audit_entries(
        self, principal: Principal, *, after: int = 0, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """The organisation's audit log from ``seq`` ``after`` on, oldest first (admins)."""
        self._require(principal, Role.ADMIN, "read the audit log")
        if not 1 <= limit <= AUDIT_PAGE:
            raise ValidationError.at("$.limit", f"must be between 1 and {AUDIT_PAGE}")
        async with self.store.transaction(readonly=True) as tx:
            return await tx.audit_entries(principal.org_id, max(after, 0), limit)

    async def export_audit(
        self, principal: Principal, *, after: int = 0
    ) -> AsyncIterator[AuditEntry]:
        """Every entry of the organisation's audit log after ``after``, page by page."""
        self._require(principal, Role.ADMIN, "export the audit log")
        return self._audit_pages(principal.org_id, after)

    async def _audit_pages(self, org_id: str, after: int = 0) -> AsyncIterator[AuditEntry]:
        while True:
            async with self.store.transaction(readonly=True) as tx:
                page = await tx.audit_entries(org_id, after, AUDIT_PAGE)
            for entry in page:
                yield entry
            if len(page) < AUDIT_PAGE:
                return
            after = page[-1].seq

    async def verify_audit(self, principal: Principal) -> ChainReport:
        """Recompute the organisation's audit chain and report the first broken link."""
        self._require(principal, Role.ADMIN, "verify the audit log")
        return await self.verify_chain(principal.org_id)

    async def verify_chain(self, org_id: str) -> ChainReport:
        """Recompute ``org_id``'s audit chain (for operators: no principal needed)."""
        async with self.store.transaction(readonly=True) as tx:
            head = await tx.audit_head(org_id)
            first = await tx.audit_entries(org_id, 0, 1)
        checker = ChainVerifier(org_id)
        if head is None:  # nothing sealed yet (or the head is gone while entries remain)
            if first:
                checker.feed(first[0])
                checker.broken_at, checker.reason = 1, "entries exist but no head does"
            return checker.report(None)
        async for entry in self._audit_pages(org_id):
            if not checker.feed(entry) or entry.seq >= head.seq:
                break  # entries sealed after the head was read are checked next time
        return checker.report(head)

    # ------------------------------------------------------------------ system side

    async def expire_due(self, limit: int = 500) -> builtins.list[Task]:
        """Every task whose deadline passed while still open to work: re-routed (a new
        attempt with a new deadline) while attempts remain, expired (and refunded) once
        they are used up. The SLA sweep; returns the tasks as they now are."""
        async with self.store.transaction(readonly=True) as tx:
            due = await tx.due_tasks(self.clock.now(), limit)
        lapsed = []
        for task in due:
            try:
                lapsed.append(await self._lapse_one(task))
            except (InvalidTransition, NotFound):
                continue  # answered or cancelled meanwhile
        return lapsed

    async def add_backups(self, limit: int = 500) -> builtins.list[Task]:
        """Open a backup worker's slot on every task 80% through its SLA without all its
        answers. Returns those tasks (for a dispatcher to fill)."""
        async with self.store.transaction(readonly=True) as tx:
            due = await tx.backup_due(self.clock.now(), limit)
        added = []
        for task in due:
            system = Principal(org_id=task.org_id, id="sla", roles=frozenset({Role.ADMIN}))

            async def op(step: Step, tx: Transaction) -> None:
                current = step.task
                if current.backup_at is None or current.backup_at > step.now:
                    return  # added meanwhile
                if current.status not in (Status.POSTED, Status.ASSIGNED):
                    return
                step.move(
                    Event.ADD_BACKUP,
                    extra_slots=1,
                    backup_at=None,
                    reason="80% of the SLA has passed",
                    actor="sla",
                    role=SYSTEM,
                )

            try:
                added.append(await self._mutate(system, task.id, Event.ADD_BACKUP, op, SYSTEM))
            except (InvalidTransition, NotFound):
                continue
        return added

    async def escalate_due(self, limit: int = 500) -> builtins.list[Task]:
        """Let the next reviewer group of each review's rule (``escalate_to``) decide it
        when nobody has taken it by its ``escalate_at``: a ``widen`` event in its history
        (and the audit log), after which the engine's usual checks allow that group's
        members too. The SLA sweep; returns the widened tasks."""
        async with self.store.transaction(readonly=True) as tx:
            due = await tx.escalation_due(self.clock.now(), limit)
        done = []
        for task in due:
            widened_now = False
            system = Principal(org_id=task.org_id, id="sla", roles=frozenset({Role.ADMIN}))

            async def op(step: Step, tx: Transaction) -> None:
                nonlocal widened_now
                widened_now = False  # each attempt of the transaction decides afresh
                current, terms = step.task, step.task.policy
                if current.escalate_at is None or current.escalate_at > step.now:
                    return  # widened meanwhile
                if current.status not in (Status.POSTED, Status.ASSIGNED) or not current.open_slots:
                    return  # taken meanwhile
                if terms is None or not terms.escalate_to or not terms.escalate_after_seconds:
                    return
                wider = widened(terms)
                group = wider.groups[-1]
                every = timedelta(seconds=terms.escalate_after_seconds)
                widened_now = True
                step.move(
                    Event.WIDEN,
                    policy=wider,
                    escalate_at=step.now + every if wider.escalate_to else None,
                    reason=f"nobody took it in {terms.escalate_after_seconds}s: "
                    f"members of {group} may decide it too",
                    data={"group": group, "groups": list(wider.groups)},
                    actor="sla",
                    role=SYSTEM,
                )

            try:
                after = await self._mutate(system, task.id, Event.WIDEN, op, SYSTEM)
            except (InvalidTransition, NotFound, ConcurrencyConflict):
                continue  # taken or changed meanwhile; a conflict is tried again next tick
            if widened_now:
                done.append(after)
        return done

    async def _lapse_one(self, task: Task) -> Task:
        system = Principal(org_id=task.org_id, id="sla", roles=frozenset({Role.ADMIN}))

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.status in EXPIRABLE and step.now >= step.task.expires_at:
                _lapse(step)
            elif not step.task.terminal and step.task.status not in EXPIRABLE:
                raise InvalidTransition(step.task.id, step.task.status.value, "expire")

        return await self._mutate(system, task.id, Event.EXPIRE, op, SYSTEM)

    # ------------------------------------------------------------------ machinery

    async def _mutate(
        self, principal: Principal, task_id: str, event: Event, op: Op, role: Role | str
    ) -> Task:
        role_name = role.value if isinstance(role, Role) else role
        for attempt in range(self._max_retries):
            lapsed = False
            try:
                async with self.store.transaction() as tx:
                    task = await tx.get_task(principal.org_id, task_id)
                    if task is None:
                        raise NotFound("task", task_id)
                    step = Step(task, actor=principal.id, role=role_name, now=self.clock.now())
                    if (
                        event is not Event.EXPIRE
                        and task.status in EXPIRABLE
                        and step.now >= task.expires_at
                    ):
                        # Past its deadline: re-routed or expired now, whatever was asked.
                        _lapse(step)
                        lapsed = True
                    else:
                        await op(step, tx)
                    await self._save(tx, task, step)
            except ConcurrencyConflict:
                await backoff(attempt)
                continue
            if step.events:
                await self._publish(task, step.task)
            if lapsed:
                raise InvalidTransition(
                    task_id, step.task.status.value, event.value, detail="its deadline passed"
                )
            return _shown(principal, step.task)
        raise ConcurrencyConflict("task", task_id)

    async def _save(self, tx: Transaction, before: Task, step: Step) -> None:
        if not step.events:
            return
        for move in step.moves:
            for hook in self.hooks:
                await hook.on_transition(tx, move.before, move.after, move.event)
        step.task = step.task.model_copy(update={"version": before.version + 1})
        await tx.update_task(step.task, expected_version=before.version)
        paths = step.task.redact
        events = step.events
        if paths:  # history and the audit log never hold what reviewers may not see
            events = [
                e.model_copy(update={"data": redact_event_data(e.data, paths)}) for e in events
            ]
        await tx.append_events(events)

    async def _publish(self, before: Task | None, task: Task) -> None:
        for observe in self.observers:
            try:
                observe(before, task)
            except Exception:  # an observer's trouble must not undo a committed change
                log.exception("observer %r failed on task %s", observe, task.id)
        await self.waker.publish([task_channel(task.id), org_channel(task.org_id)])

    def _backstop(self) -> float:
        # Jittered, so waiters parked together do not all re-read at the same moment.
        return self._wait_backstop * random.uniform(0.5, 1.0)

    @staticmethod
    def _require(principal: Principal, role: Role, action: str) -> None:
        if not principal.has(role):
            raise PermissionDenied(principal.id, action, f"needs the {role.value} role")

    async def _refusable(
        self,
        principal: Principal,
        task_id: str,
        action: str,
        run: Callable[[], Awaitable[Task]],
        *,
        role: Role = Role.REVIEWER,
    ) -> Task:
        """Run a deciding operation; if the principal may not decide (the wrong role, not
        eligible, an edit the policy refuses), record the refusal in the audit log."""
        try:
            self._require(principal, role, action)
            return await run()
        except (NotEligible, EditDenied, TokenRejected) as exc:
            await self._record_refusal(principal, task_id, action, exc)
            raise
        except PermissionDenied as exc:
            if not isinstance(exc, NotAssigned) and not principal.has(role):
                await self._record_refusal(principal, task_id, action, exc)
            raise

    def _note(
        self,
        *,
        org_id: str,
        kind: str,
        actor: str,
        data: dict[str, Any],
        task_id: str | None = None,
        at: datetime | None = None,
    ) -> AuditRecord:
        """An audit record of something the engine did besides a task event or a
        posting (those the store records itself)."""
        return AuditRecord(
            org_id=org_id,
            at=at or self.clock.now(),
            kind=kind,
            actor=actor,
            task_id=task_id,
            data=data,
        )

    async def _record_refusal(
        self, principal: Principal, task_id: str, action: str, exc: Exception
    ) -> None:
        record = self._note(
            org_id=principal.org_id,
            kind="decision.refused",
            actor=principal.id,
            task_id=task_id[:64],
            data={
                "action": action,
                "code": getattr(exc, "code", "error"),
                "reason": str(exc)[:2_000],
                "roles": [r.value for r in sorted(principal.roles)],
                "key_id": principal.key_id,
            },
        )

        async def write() -> None:
            async with self.store.transaction() as tx:
                await tx.append_audit([record])

        try:
            await retry_conflicts(write)
        except Exception:  # the refusal stands even if it cannot be written down
            log.exception("could not record a refused decision on task %s", task_id)

    # ------------------------------------------------------------------ sessions

    def session(self, principal: Principal, ledger: Ledger | None = None) -> Session:
        """This engine acting as ``principal``: every operation of :class:`Session`, the
        principal bound (``handrail._in_process``). Money moves through ``ledger``, by
        default the ledger this engine's escrow holds money in (if it does)."""
        from ._in_process import InProcessSession  # noqa: PLC0415 - it imports the engine's types
        from .ledger import LedgerEscrow  # noqa: PLC0415

        if ledger is None and isinstance(self.escrow, LedgerEscrow):
            ledger = self.escrow.ledger
        return InProcessSession(self, principal, ledger).session()


def _used(principal: Principal, token: TokenClaims | None = None) -> dict[str, Any]:
    """What a decision was made with: the API key, the decision token."""
    used: dict[str, Any] = {}
    if principal.key_id is not None:
        used["key_id"] = principal.key_id
    if token is not None:
        used["token_id"] = token.id
    return used


def _check_rememberable(task: Task) -> None:
    """A standing approval may come only from a review one reviewer decides alone, under
    a rule that allows them."""
    terms = task.policy
    if terms is not None and not terms.standing:
        raise ValidationError.at(
            "$.remember", f"policy rule {terms.rule_id} does not allow standing approvals"
        )
    if (terms is not None and terms.quorum > 1) or task.redundancy > 1:
        raise ValidationError.at(
            "$.remember", "a review that needs several reviewers cannot be remembered"
        )


def _shown(principal: Principal, task: Task) -> Task:
    """What ``principal`` may see of ``task``: a worker never learns it is a gold task."""
    return task if principal.has(Role.REQUESTER) else task.for_worker()


def _released(
    task: Task, now: datetime, *, include_answers: bool = False
) -> tuple[Assignment, ...]:
    """The assignments with every active one (and, if asked, every answer) released."""
    letting_go = {AssignmentStatus.ACTIVE} | (
        {AssignmentStatus.SUBMITTED} if include_answers else set()
    )
    return tuple(
        a.model_copy(update={"status": AssignmentStatus.RELEASED, "released_at": now})
        if a.status in letting_go
        else a
        for a in task.assignments
    )


def _decide_by_policy(step: Step, found: Explanation, context: PolicyContext) -> None:
    """Decide a new review at once when the policy says so: a rule allows or denies it,
    its rule's groups hold too few eligible reviewers for the quorum, or a standing
    approval covers it. Otherwise it waits for people."""
    task, terms, rule, now = step.task, found.terms, found.rule_id, step.now
    decision: Decision | None = None
    why = ""
    if found.outcome is RuleOutcome.ALLOW:
        why = f"policy rule {rule} allows it"
        decision = system_decision(
            DecisionType.APPROVE, found.message or why, ReasonCode.POLICY_ALLOW, rule, now
        )
    elif found.outcome is RuleOutcome.DENY:
        why = f"policy rule {rule} denies it"
        decision = system_decision(
            DecisionType.REJECT, found.message or why, ReasonCode.POLICY_DENY, rule, now
        )
    else:
        allowed = eligible(task, terms, context.groups)
        if allowed is not None and len(allowed) < terms.quorum:
            why = (
                f"policy rule {rule} needs {terms.quorum} approval(s) from "
                f"{', '.join(terms.groups)}: {len(allowed)} eligible reviewer(s)"
            )
            decision = system_decision(
                DecisionType.REJECT, why, ReasonCode.NO_ELIGIBLE_REVIEWER, rule, now
            )
        elif terms.standing and terms.quorum == 1 and task.redundancy == 1:
            cover = standing_cover(task, context.standing, allowed)
            if cover is not None:
                why = f"standing approval {cover.id} by {cover.granted_by} covers it"
                decision = system_decision(
                    DecisionType.APPROVE,
                    why,
                    ReasonCode.STANDING_APPROVAL,
                    rule,
                    now,
                    reviewer_id=cover.granted_by,
                    standing_id=cover.id,
                )
    if decision is not None:
        _system_decides(step, decision, why)


def _system_decides(step: Step, decision: Decision, why: str, **updates: Any) -> None:
    """Record a decision the system made (``policy`` event → verified)."""
    final = sealed(step.task, decision, step.now)
    output = final.model_dump(mode="json")
    step.move(
        Event.POLICY,
        Status.VERIFIED,
        output=output,
        verification=policy_verification(final, why),
        reason=why,
        data={"decision": output},
        actor=final.reviewer_id or SYSTEM,
        role=SYSTEM,
        **updates,
    )


def _lapse(step: Step) -> None:
    """The deadline passed: a new attempt (workers released, answers kept, a fresh deadline)
    while attempts remain; otherwise the rule's default outcome when it approves, or
    expiry (which every waiting agent reads as a reject)."""
    task = step.task
    terms = task.policy
    if task.attempt >= task.max_attempts and terms is not None and terms.on_timeout == "approve":
        why = f"nobody decided in time: policy rule {terms.rule_id} approves by default"
        decision = system_decision(
            DecisionType.APPROVE, why, ReasonCode.TIMEOUT, terms.rule_id, step.now
        )
        _system_decides(step, decision, why, assignments=_released(task, step.now))
        return
    if task.attempt >= task.max_attempts:
        step.move(
            Event.EXPIRE,
            reason="the deadline passed before enough answers",
            assignments=_released(task, step.now),
            actor="sla",
            role=SYSTEM,
        )
        return
    assignments = _released(task, step.now)
    answered = any(a.status is AssignmentStatus.SUBMITTED for a in assignments)
    sla = timedelta(seconds=task.sla_seconds)
    step.move(
        Event.REROUTE,
        Status.ASSIGNED if answered else Status.POSTED,
        assignments=assignments,
        attempt=task.attempt + 1,
        expires_at=step.now + sla,
        backup_at=step.now + sla * BACKUP_AT,
        extra_slots=0,
        reason=f"attempt {task.attempt} of {task.max_attempts} ran out of time",
        actor="sla",
        role=SYSTEM,
    )


EVENT_BATCH = 200
"""Events read at a time from the store by an event stream."""


async def _events_only(
    feed: AsyncGenerator[TaskEvent | None, None],
) -> AsyncGenerator[TaskEvent, None]:
    try:
        async for event in feed:
            if event is not None:
                yield event
    finally:
        await feed.aclose()
