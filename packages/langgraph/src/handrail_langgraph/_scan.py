"""Which threads of a checkpointer are paused on a Handrail task.

A resumer learns of decisions from events; this is how it catches up without them (on
start, on every reconnect, and now and then): it lists the checkpointer's checkpoints,
keeps each thread's latest one, and picks the threads whose latest checkpoint holds an
interrupt made by a Handrail pause. It reads every checkpoint the saver lists, so its
cost grows with the checkpointer; the resumer then reads each thread it found with
``get_state`` before it resumes anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.types import Interrupt

from handrail.interrupts import task_id_of

from ._cursor import CURSOR_THREAD_PREFIX

__all__ = ["apaused_threads", "paused_threads"]


def _handrail_interrupts(found: CheckpointTuple) -> bool:
    for write in found.pending_writes or ():
        values = write[2] if isinstance(write[2], list | tuple) else [write[2]]
        if any(isinstance(v, Interrupt) and task_id_of(v) is not None for v in values):
            return True
    return False


class _Latest:
    """Each root thread's newest checkpoint, as the listing goes by."""

    def __init__(self) -> None:
        self.newest: dict[str, tuple[str, bool]] = {}

    def see(self, found: CheckpointTuple) -> None:
        conf = found.config.get("configurable") or {}
        thread, ns = str(conf.get("thread_id", "")), conf.get("checkpoint_ns") or ""
        if ns or not thread or thread.startswith(CURSOR_THREAD_PREFIX):
            return
        checkpoint_id = str(conf.get("checkpoint_id", ""))
        known = self.newest.get(thread)
        if known is None or checkpoint_id > known[0]:  # ids sort by time
            self.newest[thread] = (checkpoint_id, _handrail_interrupts(found))

    def paused(self) -> list[str]:
        return sorted(t for t, (_, paused) in self.newest.items() if paused)


def paused_threads(checkpointer: BaseCheckpointSaver[Any]) -> list[str]:
    """The threads whose latest checkpoint holds a Handrail interrupt."""
    latest = _Latest()
    for found in checkpointer.list(None):
        latest.see(found)
    return latest.paused()


async def apaused_threads(checkpointer: BaseCheckpointSaver[Any]) -> list[str]:
    """:func:`paused_threads` with the checkpointer's async listing."""
    latest = _Latest()
    listing: AsyncIterator[CheckpointTuple] = checkpointer.alist(None)
    async for found in listing:
        latest.see(found)
    return latest.paused()
