"""SLA enforcement: backups at 80% of a task's SLA, re-routing or expiry at 100%, and
escalation of reviews nobody took to their rule's next reviewer group.

:meth:`SlaScheduler.tick` does one round at the engine clock's current time, so tests
drive it with a :class:`~handrail.clock.ManualClock` and no sleeps;
:func:`handrail.runtime.run_sweeps` repeats it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .dispatch import Dispatcher
from .engine import Engine
from .lifecycle import Status
from .models import Task

__all__ = ["SlaReport", "SlaScheduler"]

log = logging.getLogger(__name__)


@dataclass
class SlaReport:
    backups: list[Task] = field(default_factory=list)
    """Tasks that got a backup worker's slot."""
    rerouted: list[Task] = field(default_factory=list)
    """Tasks past their deadline with attempts left: a new attempt, a new deadline."""
    expired: list[Task] = field(default_factory=list)
    """Tasks past their last deadline: expired, their escrow refunded."""
    assigned: list[Task] = field(default_factory=list)
    """Of those, the ones a dispatcher pushed to a worker."""
    escalated: list[Task] = field(default_factory=list)
    """Reviews nobody took in time, now open to their rule's next reviewer group."""


class SlaScheduler:
    """Adds backups, re-routes and expires tasks on time; with dispatchers, pushes the
    backups and re-routed tasks to workers at once."""

    def __init__(self, engine: Engine, dispatchers: list[Dispatcher] | None = None) -> None:
        self.engine = engine
        self.dispatchers = {d.org_id: d for d in dispatchers or []}

    async def tick(self) -> SlaReport:
        report = SlaReport()
        # deadlines first: a task at 100% gets a new attempt (or expires), not a backup
        for task in await self.engine.expire_due():
            (report.expired if task.status is Status.EXPIRED else report.rerouted).append(task)
        report.backups = await self.engine.add_backups()
        report.escalated = await self.engine.escalate_due()
        for task in report.backups + report.rerouted:
            dispatcher = self.dispatchers.get(task.org_id)
            if dispatcher is not None and (done := await dispatcher.dispatch(task)) is not None:
                report.assigned.append(done)
        return report
