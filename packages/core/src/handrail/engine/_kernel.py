"""The engine's kernel: the one write path every operation takes.

``_mutate`` reads the task, lapses it if its deadline passed (whatever was asked), runs
the operation's transitions, and writes the task back with an optimistic version check;
when two writers race, the loser re-reads and re-decides. ``_save`` runs the hooks (the
escrow, learning) and appends the history (redacted as the task asks), in the same
transaction; ``_publish`` tells observers and wakes waiters after the commit. Refused
decisions are written to the audit log (``_refusable``). The concept modules beside this
one (``requests``, ``work``, ...) hold the operations themselves."""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from .._redact import redact_event_data
from .._retry import backoff, retry_conflicts
from .._steps import Step
from ..audit import AuditRecord
from ..clock import Clock, SystemClock
from ..errors import (
    ConcurrencyConflict,
    EditDenied,
    InvalidTransition,
    NotAssigned,
    NotEligible,
    NotFound,
    PermissionDenied,
    TaskExpired,
    TokenRejected,
)
from ..escrow import Escrow, NoEscrow
from ..hooks import Hook
from ..lifecycle import EXPIRABLE, Event, Status
from ..models import Principal, Role, Task
from ..pipeline import Pipeline
from ..policy import CompiledPolicy, Policy
from ..store import PolicyContext, Store, Transaction
from ..tokens import DecisionTokens
from ..verification import Verifier
from ..wake import LocalWaker, Waker, org_channel, task_channel
from ._moves import SYSTEM, lapse, shown

SETTLED_KEPT = 256  # terminal tasks kept for waiters woken by their commit

COMPILED_KEPT = 256  # compiled policies cached, one per (organisation, version)

log = logging.getLogger(__name__)

Op = Callable[[Step, Transaction], Awaitable[None]]
"""One operation's transitions: applied to the step, inside the transaction."""


class Kernel:
    """The one write path every operation takes, over a :class:`~handrail.store.Store`.

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
        # the tasks this process last committed, by id, while terminal: what a woken waiter
        # answers without reading its task again (the newest few; see ``Engine.wait``)
        self._settled: OrderedDict[str, Task] = OrderedDict()

    async def aclose(self) -> None:
        await self.waker.aclose()
        await self.store.close()

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

    async def _lapse_one(self, task: Task) -> Task:
        system = Principal(org_id=task.org_id, id="sla", roles=frozenset({Role.ADMIN}))

        async def op(step: Step, tx: Transaction) -> None:
            if step.task.status in EXPIRABLE and step.now >= step.task.expires_at:
                lapse(step)
            elif not step.task.terminal and step.task.status not in EXPIRABLE:
                raise InvalidTransition(step.task.id, step.task.status.value, "expire")

        return await self._mutate(system, task.id, Event.EXPIRE, op, SYSTEM)

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
                        lapse(step)
                        lapsed = True
                    else:
                        try:
                            await op(step, tx)
                        except InvalidTransition as exc:
                            if task.status is not Status.EXPIRED or isinstance(exc, TaskExpired):
                                raise
                            # nothing moves an expired task: say so, not which step refused
                            raise TaskExpired(task_id, event.value) from None
                    await self._save(tx, task, step)
            except ConcurrencyConflict:
                await backoff(attempt)
                continue
            if step.events:
                await self._publish(task, step.task)
            if lapsed and step.task.status is Status.EXPIRED:
                raise TaskExpired(task_id, event.value)
            if lapsed:
                raise InvalidTransition(
                    task_id, step.task.status.value, event.value, detail="its deadline passed"
                )
            return shown(principal, step.task)
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
        if task.terminal:
            self._settled[task.id] = task
            self._settled.move_to_end(task.id)
            if len(self._settled) > SETTLED_KEPT:
                self._settled.popitem(last=False)
        else:
            self._settled.pop(task.id, None)
        for observe in self.observers:
            try:
                observe(before, task)
            except Exception:  # an observer's trouble must not undo a committed change
                log.exception("observer %r failed on task %s", observe, task.id)
        await self.waker.publish([task_channel(task.id), org_channel(task.org_id)])

    def _settled_since(self, principal: Principal, task_id: str, seen: int) -> Task | None:
        """The task as this process committed it, if that is terminal and newer than
        version ``seen`` (what a waiter last read), as ``principal`` may see it."""
        task = self._settled.get(task_id)
        if task is None or task.org_id != principal.org_id or task.version <= seen:
            return None
        return shown(principal, task)

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
