"""``LedgerEscrow``: the engine's escrow hooks, moving money through the ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lifecycle import Event, Status
from ..models import Task
from ._ledger import Ledger

if TYPE_CHECKING:  # the store imports ledger records: no cycle at run time
    from ..store import Transaction

__all__ = ["LedgerEscrow"]

_REFUNDED = frozenset({Status.CANCELLED, Status.EXPIRED, Status.FAILED})


class LedgerEscrow:
    """Holds on creation, pays on verification, refunds on every other ending (a review the
    policy decided included), freezes disputed earnings: each in the same transaction as
    the task's own change."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def on_create(self, tx: Transaction, task: Task) -> None:
        await self.ledger.hold(tx, task, task.created_at)

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        now, op = after.updated_at, f"v{before.version}"
        if event is Event.APPROVE_ESTIMATE:
            await self.ledger.adjust(tx, after, now)
        elif event is Event.VERIFY:
            accepted = after.workers_agreeing_with(after.output)
            await self.ledger.resolve(tx, after, accepted, now)
        elif event is Event.POLICY:  # the policy decided: nobody's work to pay, all refunded
            await self.ledger.resolve(tx, after, (), now)
        elif event is Event.DISPUTE:
            await self.ledger.freeze(tx, after, now, op)
        elif event is Event.UPHOLD:
            await self.ledger.unfreeze(tx, after, now, op)
        elif event is Event.OVERTURN:
            await self.ledger.overturn(tx, after, now, op)
        elif after.status in _REFUNDED and before.status is not after.status:
            await self.ledger.resolve(tx, after, (), now)
