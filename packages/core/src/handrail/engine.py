"""The engine: every task operation, over a store, in one transaction each.

Each operation reads the task, checks who is asking, applies one or more lifecycle
transitions (``handrail.lifecycle``), appends them to the history, lets the escrow move
money for them, and writes the task back with an optimistic version check. When two
writers race, the loser re-reads and re-decides: so of two workers claiming the last slot
at once, exactly one wins and the other gets ``InvalidTransition``. Waiters are woken after
the commit, through the notifier.

Every method takes the acting :class:`Principal`; objects of another organisation are
``NotFound``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ._ids import new_id
from ._jsonschema import validate_instance
from ._retry import backoff, retry_conflicts
from ._steps import (
    Step,
    already_answered,
    check_decision,
    claim,
    enum_value,
    need_text,
    replace,
)
from ._validation import parse, spec_issues
from .clock import Clock, SystemClock
from .errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidTransition,
    NotAssigned,
    NotFound,
    PermissionDenied,
    ValidationError,
    WaitTimeout,
)
from .escrow import Escrow, NoEscrow
from .hooks import Hook
from .lifecycle import EXPIRABLE, Event, Status
from .models import (
    Assignment,
    AssignmentStatus,
    Decision,
    Estimate,
    Kind,
    Page,
    Principal,
    RiskTier,
    Role,
    Task,
    TaskEvent,
    TaskSpec,
    Verification,
)
from .money import Money
from .notify import LocalNotifier, Notifier, org_channel, task_channel
from .pipeline import Pipeline
from .store import Store, TaskQuery, Transaction
from .verification import Verifier
from .workers import WorkerProfile, WorkerStats

__all__ = ["Engine"]

log = logging.getLogger(__name__)

SYSTEM = "system"
BACKUP_AT = 0.8  # share of the SLA after which a backup worker is added
MAX_PAGE = 500


def _fingerprint(spec: TaskSpec) -> str:
    body = spec.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


Op = Callable[[Step, Transaction], Awaitable[None]]


class Engine:
    """Task operations over a :class:`~handrail.store.Store`.

    ``verifier`` judges submitted answers (default: the verification pipeline), ``escrow``
    moves money at lifecycle points (default: none), ``notifier`` wakes waiters (default:
    in-process), ``clock`` tells the time (default: the system's).
    ``hooks`` run inside each change's transaction (see ``handrail.hooks``);
    ``observers`` are told ``(before, after)`` after each change commits (``before`` is None
    for a new task), in this process, for in-memory views such as a router's loads.
    ``wait_backstop`` bounds how long a waiter trusts notifications alone before it
    re-reads the task anyway; it is a safety net, not how waiters normally wake.
    """

    def __init__(
        self,
        store: Store,
        *,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        verifier: Verifier | None = None,
        escrow: Escrow | None = None,
        hooks: Sequence[Hook] = (),
        observers: Sequence[Callable[[Task | None, Task], None]] = (),
        max_retries: int = 50,
        wait_backstop: float = 5.0,
    ) -> None:
        self.store = store
        self.notifier: Notifier = notifier or LocalNotifier()
        self.clock: Clock = clock or SystemClock()
        self.verifier: Verifier = verifier or Pipeline()
        self.escrow: Escrow = escrow or NoEscrow()
        learner = [self.verifier] if isinstance(self.verifier, Hook) else []
        self.hooks: tuple[Hook, ...] = (self.escrow, *learner, *hooks)
        self.observers = list(observers)
        self._max_retries = max_retries
        self._wait_backstop = wait_backstop

    async def aclose(self) -> None:
        await self.notifier.aclose()
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
                    await tx.insert_task(task)
                    await tx.append_events([self._created_event(task, principal)])
                    for hook in self.hooks:  # the escrow may refuse: that undoes it all
                        await hook.on_create(tx, task)
            except ConcurrencyConflict:
                await backoff(attempt)
                continue
            await self._publish(None, task)
            return _shown(principal, task)
        raise ConcurrencyConflict("task", spec.idempotency_key or "new")

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

    def _created_event(self, task: Task, principal: Principal) -> TaskEvent:
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
        async with self.notifier.subscribe([task_channel(task_id)]) as sub:
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
        async with self.notifier.subscribe([org_channel(principal.org_id)]) as sub:
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
        """Take a slot on a task. Claiming a task one already holds changes nothing."""
        self._require(principal, Role.REVIEWER, "claim tasks")

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.active_assignment(principal.id) is None:
                await self._check_worker(tx, step.task, principal.id)
                claim(step, principal.id)

        return await self._mutate(principal, task_id, Event.CLAIM, op, Role.REVIEWER)

    async def assign(self, principal: Principal, task_id: str, worker_id: str) -> Task:
        """Push a task to a worker (the router's choice): a claim made on its behalf."""
        self._require(principal, Role.ADMIN, "assign tasks")

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.active_assignment(worker_id) is None:
                await self._check_worker(tx, step.task, worker_id)
                claim(step, worker_id, pushed_by=principal.id)

        return await self._mutate(principal, task_id, Event.CLAIM, op, Role.ADMIN)

    async def _check_worker(self, tx: Transaction, task: Task, worker_id: str) -> None:
        """A worker with a profile takes only what its skills and trust tier allow, and no
        more tasks at once than its capacity."""
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
        self._require(principal, Role.REVIEWER, "submit answers")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.kind is Kind.REVIEW:
                decision = parse(Decision, output)
                await self._decide_op(step, tx, principal.id, decision)
                return
            if already_answered(task, principal.id, output):
                return
            validate_instance(output, task.output_schema, "$.output", "output does not fit")
            if task.active_assignment(principal.id) is None:
                raise NotAssigned(task.id, principal.id)
            await self._answer(step, tx, principal.id, output)

        return await self._mutate(principal, task_id, Event.SUBMIT, op, Role.REVIEWER)

    async def decide(
        self, principal: Principal, task_id: str, decision: Decision | Mapping[str, Any]
    ) -> Task:
        """Decide a review task: claim (when posted), record the decision, verify.

        On a task with one slot, posted → assigned → submitted → verified happens in one
        transaction. The same decision again by the same reviewer changes nothing.
        """
        self._require(principal, Role.REVIEWER, "decide reviews")
        decision = parse(Decision, decision)

        async def op(step: Step, tx: Transaction) -> None:
            await self._decide_op(step, tx, principal.id, decision)

        return await self._mutate(principal, task_id, Event.SUBMIT, op, Role.REVIEWER)

    async def _decide_op(
        self, step: Step, tx: Transaction, worker: str, decision: Decision
    ) -> None:
        task = step.task
        if task.kind is not Kind.REVIEW:
            raise ValidationError.at("$.kind", "decisions are for review tasks; submit an answer")
        check_decision(task, decision)
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
        await self._answer(step, tx, worker, stamped.model_dump(mode="json"))

    async def _answer(self, step: Step, tx: Transaction, worker: str, output: Any) -> None:
        task = step.task
        held = task.active_assignment(worker)
        if held is None:
            raise NotAssigned(task.id, worker)
        answered = held.model_copy(
            update={
                "status": AssignmentStatus.SUBMITTED,
                "submitted_at": step.now,
                "output": output,
            }
        )
        assignments = replace(task.assignments, held, answered)
        answers = sum(1 for a in assignments if a.status is AssignmentStatus.SUBMITTED)
        complete = answers >= task.redundancy
        if complete:  # anyone still working on it (a backup) is let go
            assignments = _released(task.model_copy(update={"assignments": assignments}), step.now)
        step.move(
            Event.SUBMIT,
            Status.SUBMITTED if complete else Status.ASSIGNED,
            assignments=assignments,
            data={"worker_id": worker, "output": output},
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
        self._require(principal, Role.ADMIN, "verify tasks")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            if task.status is not Status.MANUAL_REVIEW:
                raise InvalidTransition(task.id, task.status.value, "verify")
            final = output
            if final is None:
                final = task.agreed_output()
                if final is None:
                    raise ValidationError.at("$.output", "answers differ: choose the output")
            elif task.kind is Kind.REVIEW:
                final = parse(Decision, final, "$.output").model_dump(mode="json")
            else:
                validate_instance(final, task.output_schema, "$.output", "output does not fit")
            step.move(Event.VERIFY, output=final, reason=reason)

        return await self._mutate(principal, task_id, Event.VERIFY, op, Role.ADMIN)

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
        await tx.append_events(step.events)

    async def _publish(self, before: Task | None, task: Task) -> None:
        for observe in self.observers:
            try:
                observe(before, task)
            except Exception:  # an observer's trouble must not undo a committed change
                log.exception("observer %r failed on task %s", observe, task.id)
        await self.notifier.publish([task_channel(task.id), org_channel(task.org_id)])

    def _backstop(self) -> float:
        # Jittered, so waiters parked together do not all re-read at the same moment.
        return self._wait_backstop * random.uniform(0.5, 1.0)

    @staticmethod
    def _require(principal: Principal, role: Role, action: str) -> None:
        if not principal.has(role):
            raise PermissionDenied(principal.id, action, f"needs the {role.value} role")


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


def _lapse(step: Step) -> None:
    """The deadline passed: a new attempt (workers released, answers kept, a fresh deadline)
    while attempts remain, otherwise expiry."""
    task = step.task
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
