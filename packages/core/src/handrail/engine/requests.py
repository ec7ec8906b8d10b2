"""The requester's side: create, read, list, history, cancel, estimates, dispute, and
waiting on a task or on the organisation's event stream."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
from collections.abc import AsyncGenerator, Mapping
from datetime import timedelta
from typing import Any

from .._model_base import assembled, detached
from .._retry import backoff
from .._steps import Step, enum_value, need_text
from ..authority import with_terms
from ..errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidTransition,
    NotEligible,
    NotFound,
    ValidationError,
    WaitTimeout,
)
from ..ids import new_id
from ..lifecycle import BACKUP_AT, EXPIRABLE, Event, Status
from ..models import Assignment, Kind, Page, Principal, Role, Task, TaskEvent, TaskSpec
from ..policy import Explanation, Subject
from ..store import PolicyContext, TaskQuery, Transaction
from ..validation import parse, spec_issues
from ..wake import org_channel, task_channel
from ._kernel import Kernel
from ._moves import MAX_PAGE, SYSTEM, released, shown
from .governance import decide_by_policy

_LATER_FIELDS = ("answer_ttl_seconds", "redact")  # fields added after tasks were first stored


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


_LATER_DEFAULTS = tuple((f, TaskSpec.model_fields[f].default) for f in _LATER_FIELDS)
_CANONICAL = json.JSONEncoder(sort_keys=True)  # what json.dumps(..., sort_keys=True) uses


def _fingerprint(spec: TaskSpec) -> str:
    # fields added later count only when set, so a replay of an older request still matches
    exclude = {"idempotency_key"}
    exclude.update(f for f, default in _LATER_DEFAULTS if getattr(spec, f) == default)
    body = spec.model_dump(mode="json", exclude=exclude)
    return hashlib.sha256(_CANONICAL.encode(body).encode()).hexdigest()


class RequestsMixin(Kernel):
    """Requests: what an agent (a requester) does with its tasks."""

    async def create(self, principal: Principal, spec: TaskSpec | Mapping[str, Any]) -> Task:
        """Post a task. With an ``idempotency_key``, repeating the same request returns the
        same task; the same key with a different request raises ``IdempotencyConflict``."""
        self._require(principal, Role.REQUESTER, "create tasks")
        given = spec
        spec = parse(TaskSpec, spec)
        if spec is given:  # the caller's own: the task must not share its JSON
            spec = detached(spec)
        if spec.gold_answer is not None:
            self._require(principal, Role.ADMIN, "create gold tasks")
        issues = spec_issues(spec)
        if issues:
            raise ValidationError(issues, summary="invalid task")
        # only a keyed request is ever compared with its replay
        fingerprint = _fingerprint(spec) if spec.idempotency_key is not None else None
        for attempt in range(self._max_retries):
            try:
                async with self.store.transaction() as tx:
                    if spec.idempotency_key is not None:
                        existing = await tx.find_by_key(principal.org_id, spec.idempotency_key)
                        if existing is not None:
                            if existing.request_fingerprint != fingerprint:
                                raise IdempotencyConflict(spec.idempotency_key, existing.id)
                            return shown(principal, existing)
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
                        decide_by_policy(step, found, context)
                        await self._save(tx, task, step)
                        task = step.task
            except ConcurrencyConflict:
                await backoff(attempt)
                continue
            await self._publish(None, task)
            return shown(principal, task)
        raise ConcurrencyConflict("task", spec.idempotency_key or "new")

    def _new_task(self, principal: Principal, spec: TaskSpec, fingerprint: str | None) -> Task:
        now = self.clock.now()
        made = {
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
        if type(spec) is not TaskSpec:  # a subclass's own fields: let validation judge them
            fields = spec.model_dump(exclude={"task_type", "title"})
            return Task.model_validate({**fields, **made})
        # A validated spec's values are a valid task's, with what is made here (a posted
        # task's invariants hold: its deadline is ahead, nobody holds it, the first attempt):
        # what validating them again would make (tests/core/test_models.py compares), but
        # sharing the spec's values, which the caller's spec must not (detached in create).
        return assembled(Task, spec.__dict__ | made)

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
        return assembled(  # valid by construction: a task's and a principal's, and JSON
            TaskEvent,
            {
                "id": new_id(),
                "task_id": task.id,
                "org_id": task.org_id,
                "at": task.created_at,
                "actor": principal.id,
                "actor_role": Role.REQUESTER.value,
                "event": Event.CREATE,
                "from_status": None,
                "to_status": Status.POSTED,
                "data": data,
            },
        )

    async def get(self, principal: Principal, task_id: str) -> Task:
        async with self.store.transaction(readonly=True) as tx:
            task = await tx.get_task(principal.org_id, task_id)
        if task is None:
            raise NotFound("task", task_id)
        return shown(principal, task)

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
        items = tuple(shown(principal, t) for t in tasks[:limit])
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
            step.move(Event.CANCEL, reason=reason, assignments=released(task, step.now))

        return await self._mutate(principal, task_id, Event.CANCEL, op, Role.REQUESTER)

    async def approve_estimate(self, principal: Principal, task_id: str) -> Task:
        """Accept the pending estimate: its worker holds the task, at the estimated price."""
        self._require(principal, Role.REQUESTER, "approve estimates")

        async def op(step: Step, tx: Transaction) -> None:
            task = step.task
            estimate = task.estimate
            if estimate is None or task.status is not Status.ESTIMATE_PENDING:
                raise InvalidTransition(task.id, task.status.value, Event.APPROVE_ESTIMATE.value)
            if estimate.worker_id == principal.id:
                raise NotEligible(
                    principal.id,
                    task.id,
                    "no one approves its own estimate",
                    f"approve the estimate on {task.id}",
                )
            holder = Assignment(worker_id=estimate.worker_id, claimed_at=step.now)
            step.move(
                Event.APPROVE_ESTIMATE,
                assignments=(*task.assignments, holder),
                estimate=estimate.model_copy(update={"approved_by": principal.id}),
                payout=estimate.amount or task.payout,
                data={"worker_id": estimate.worker_id},
            )

        return await self._refusable(
            principal,
            task_id,
            "approve estimates",
            lambda: self._mutate(principal, task_id, Event.APPROVE_ESTIMATE, op, Role.REQUESTER),
            role=Role.REQUESTER,
        )

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
            settled: Task | None = None
            while True:
                task = settled or await self.get(principal, task_id)
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
                seen = task.version
                del task  # parked waiters hold no copy of the task (memory per waiter)
                woken = await sub.wait(pause)
                # woken by a commit of this process that settled it: no need to read it
                settled = self._settled_since(principal, task_id, seen) if woken else None

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
