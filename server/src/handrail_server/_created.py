"""Which tasks a request created itself: :func:`creating` around an ``Engine.create`` call,
and :class:`CreatedHook` (a lifecycle hook) noting each task it inserts.

The engine answers a create whose idempotency key names a task already there with that
task, just as it answers the create that made it: only the transaction knows which it was.
Two twins racing past a check made beforehand both reach the engine, and the one that finds
its twin's task must answer as a replay (200), not as the create (201).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from handrail import Event, Task
from handrail.store import Transaction

__all__ = ["CreatedHook", "creating"]

_MADE: ContextVar[set[str] | None] = ContextVar("handrail_created_here", default=None)


@contextmanager
def creating() -> Iterator[set[str]]:
    """The ids of the tasks inserted inside the block (an attempt undone and retried may
    leave an id there that no task has: compare with the id the engine answers)."""
    made: set[str] = set()
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)


class CreatedHook:
    """Notes each inserted task's id for the :func:`creating` block around it."""

    async def on_create(self, tx: Transaction, task: Task) -> None:
        made = _MADE.get()
        if made is not None:
            made.add(task.id)

    async def on_transition(self, tx: Transaction, before: Task, after: Task, event: Event) -> None:
        return None
