"""Push routing: the engine assigns tasks to the best eligible worker.

A :class:`Dispatcher` keeps a :class:`~handrail.routing.Router` current (profiles and
reliability loaded from the store; loads followed from every committed change, as an
engine observer) and assigns open tasks through :meth:`Engine.assign`, which re-checks
eligibility and capacity inside the transaction, so a stale router can never over-assign.
Pull workers keep taking from their queues beside it.

In several processes each dispatcher follows only its own process's changes; the engine's
checks keep assignments right, and :meth:`Dispatcher.load` resynchronises.
"""

from __future__ import annotations

import builtins
import logging

from .engine import Engine
from .errors import InvalidTransition, NotFound, PermissionDenied
from .lifecycle import EXPIRABLE
from .models import AssignmentStatus, Principal, Role, Task
from .routing import Router
from .wake import org_channel
from .workers import reliability

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


def _active(task: Task | None) -> set[str]:
    if task is None or task.status not in EXPIRABLE:
        return set()
    return {a.worker_id for a in task.assignments if a.status is AssignmentStatus.ACTIVE}


class Dispatcher:
    """Assigns tasks in one organisation to workers, best first (see ``handrail.routing``)."""

    def __init__(self, engine: Engine, org_id: str, router: Router | None = None) -> None:
        self.engine = engine
        self.org_id = org_id
        self.router = router or Router()
        self.system = Principal(org_id=org_id, id="dispatcher", roles=frozenset({Role.ADMIN}))
        engine.observers.append(self.observe)

    def observe(self, before: Task | None, after: Task) -> None:
        """Follow worker loads from a committed change (an engine observer)."""
        if after.org_id != self.org_id:
            return
        was, now = _active(before), _active(after)
        for worker in now - was:
            self.router.adjust_load(self.org_id, worker, +1)
        for worker in was - now:
            self.router.adjust_load(self.org_id, worker, -1)

    async def load(self) -> int:
        """(Re)load every worker profile, load and reliability from the store."""
        async with self.engine.store.transaction(readonly=True) as tx:
            profiles = await tx.list_workers(self.org_id)
            for profile in profiles:
                stats = await tx.stats_of_worker(self.org_id, profile.id)
                load = await tx.active_load(self.org_id, profile.id)
                score = reliability(
                    sum(s.gold_correct for s in stats),
                    sum(s.gold_total for s in stats),
                    sum(s.agreed for s in stats),
                    sum(s.disagreed for s in stats),
                )
                durations = {s.task_type: m for s in stats if (m := s.median_duration)}
                self.router.upsert(profile, reliability=score, load=load, durations=durations)
        return len(profiles)

    async def dispatch(self, task: Task, *, tries: int = 5) -> Task | None:
        """Assign ``task`` to the best eligible worker who has not worked on it; None when
        nobody fits (pull workers may still take it)."""
        tried: set[str] = {a.worker_id for a in task.assignments}
        for _ in range(tries):
            if task.open_slots <= 0 or task.status not in EXPIRABLE:
                return task
            left = (task.expires_at - self.engine.clock.now()).total_seconds()
            worker = self.router.pick(
                self.org_id,
                task.task_type,
                task.risk_tier,
                reward_minor=task.payout.minor if task.payout else 0,
                seconds_left=left,
                exclude=tried,
            )
            if worker is None:
                return None
            try:
                return await self.engine.assign(self.system, task.id, worker)
            except PermissionDenied:  # the router was stale: the engine knows better
                tried.add(worker)
                self.router.set_load(self.org_id, worker, 10**6)
                await self._refresh(worker)
            except (InvalidTransition, NotFound):
                return None  # taken, ended or gone meanwhile
        return None

    async def _refresh(self, worker: str) -> None:
        async with self.engine.store.transaction(readonly=True) as tx:
            profile = await tx.get_worker(self.org_id, worker)
            load = await tx.active_load(self.org_id, worker)
        if profile is None:
            self.router.remove(self.org_id, worker)
        else:
            self.router.set_load(self.org_id, worker, load)

    async def dispatch_open(self, limit: int = 200) -> builtins.list[Task]:
        """Assign every open task with a free slot that someone fits."""
        async with self.engine.store.transaction(readonly=True) as tx:
            open_now = await tx.open_tasks(self.org_id, now=self.engine.clock.now(), limit=limit)
        assigned = []
        for task in open_now:
            current = task
            while current.open_slots > 0:
                done = await self.dispatch(current)
                if done is None or done is current:
                    break
                assigned.append(done)
                current = done
        return assigned

    async def run(self, *, backstop: float = 5.0) -> None:
        """Load the workers, then assign open work as it arrives, until cancelled."""
        await self.load()
        async with self.engine.waker.subscribe([org_channel(self.org_id)]) as sub:
            while True:
                try:
                    await self.dispatch_open()
                except Exception:
                    log.exception("dispatching failed; trying again")
                await sub.wait(backstop)
