"""The worker's side before an answer: the queue, waiting for work, claims and pushes,
releases, and estimates. Answers and decisions are in ``decisions``."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Collection

from .._steps import Step, claim, enum_value, replace
from ..authority import earning_problem, groups_of
from ..errors import (
    InvalidTransition,
    NotAssigned,
    NotEligible,
    PermissionDenied,
    ValidationError,
)
from ..lifecycle import Event, Status
from ..models import AssignmentStatus, Estimate, Kind, Principal, RiskTier, Role, Task
from ..money import Money
from ..store import Transaction
from ..wake import org_channel
from ._moves import MAX_PAGE, shown
from .governance import GovernanceMixin


class WorkMixin(GovernanceMixin):
    """Taking work: the queue, claims, releases, estimates."""

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
        return await self._open_for(principal, kind, task_type, risk_tier, limit)

    async def _open_for(
        self,
        principal: Principal,
        kind: Kind | str | None,
        task_type: str | None,
        risk_tier: RiskTier | str | None,
        limit: int,
    ) -> builtins.list[Task]:
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
        return [shown(principal, t) for t in found]

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
        """The worker's queue, less the ids in ``skip`` (up to ``limit`` tasks besides
        them), as soon as that is not empty; ``[]`` after ``timeout`` seconds."""
        self._require(principal, Role.REVIEWER, "see the work queue")
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError.at("$.limit", f"must be between 1 and {MAX_PAGE}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self.waker.subscribe([org_channel(principal.org_id)]) as sub:
            while True:
                # skipped tasks are read past, not counted: ``limit`` tasks besides them
                found = await self._open_for(
                    principal, kind, task_type, risk_tier, limit + len(skip)
                )
                found = [t for t in found if t.id not in skip][:limit]
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
            await self._take_slot(step, tx, principal.id)

        return await self._refusable(
            principal,
            task_id,
            "claim tasks",
            lambda: self._mutate(principal, task_id, Event.CLAIM, op, Role.REVIEWER),
        )

    async def _take_slot(self, step: Step, tx: Transaction, worker: str) -> None:
        """Claim a slot for ``worker`` in this transaction unless it holds one already,
        with every check a claim makes: what :meth:`claim` does, and what a decision or an
        answer from a reviewer who never claimed does first (see ``submit``)."""
        if step.task.active_assignment(worker) is None:
            await self._check_worker(tx, step.task, worker)
            claim(step, worker)

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
            why = earning_problem(task, principal.id)
            if why is not None:
                raise NotEligible(principal.id, task.id, why, f"offer an estimate on {task.id}")
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

        return await self._refusable(
            principal,
            task_id,
            "offer estimates",
            lambda: self._mutate(principal, task_id, Event.OFFER_ESTIMATE, op, Role.REVIEWER),
        )

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
