"""Escrow hooks: where money moves in a task's life.

The engine calls an :class:`Escrow` inside the same transaction as the change it pays for,
so a task and its money never disagree: ``on_create`` holds the funds (and may refuse with
``InsufficientFunds``, which undoes the creation), ``on_transition`` releases, refunds or
freezes them as the task moves. :class:`NoEscrow` moves nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hooks import Hook
from .lifecycle import Event
from .models import Task

if TYPE_CHECKING:
    from .store import Transaction

__all__ = ["Escrow", "NoEscrow"]

Escrow = Hook
"""An escrow is the lifecycle hook that moves money (see ``handrail.hooks``)."""


class NoEscrow:
    """Moves no money: for unpaid review work and until a ledger is configured."""

    async def on_create(self, tx: Transaction, task: Task) -> None:
        return None

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        return None
