"""Lifecycle hooks: code that runs inside a task's transaction at every change.

The escrow is one (money moves with the task); the verification pipeline is another (it
learns worker statistics from outcomes); a router keeps its worker loads current with a
third. A hook that raises undoes the whole change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .lifecycle import Event
from .models import Task

if TYPE_CHECKING:  # the store imports models: no cycle at run time
    from .store import Transaction

__all__ = ["Hook"]


@runtime_checkable
class Hook(Protocol):
    async def on_create(self, tx: Transaction, task: Task) -> None: ...

    async def on_transition(
        self, tx: Transaction, before: Task, after: Task, event: Event
    ) -> None: ...
