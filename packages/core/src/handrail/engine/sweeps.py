"""The SLA sweeps: expiry (or re-routing) at a task's deadline, a backup worker's slot at
80% of its SLA, and escalation of reviews nobody took. ``handrail.sla.SlaScheduler`` runs
them on a timer."""

from __future__ import annotations

import builtins
from datetime import timedelta

from .._steps import Step
from ..authority import widened
from ..errors import ConcurrencyConflict, InvalidTransition, NotFound
from ..lifecycle import Event, Status
from ..models import Principal, Role, Task
from ..store import Transaction
from ._kernel import Kernel
from ._moves import SYSTEM


class SweepsMixin(Kernel):
    """The sweeps the SLA scheduler runs."""

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
