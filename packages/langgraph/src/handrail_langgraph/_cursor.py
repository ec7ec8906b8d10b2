"""Where a resumer keeps its place in the organisation's event stream.

A :class:`Cursor` holds one number: the sequence number up to which every event has been
handled. :class:`CheckpointCursor`, the default, keeps it in the graph's own checkpointer
(one record, rewritten in place, on a thread of its own), so it is exactly as durable as
the threads it resumes and needs nothing else set up; :class:`MemoryCursor` forgets it
when the process ends.
"""

from __future__ import annotations

import threading
from typing import Any, Final, Protocol

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint

__all__ = ["CURSOR_THREAD_PREFIX", "CheckpointCursor", "Cursor", "MemoryCursor"]

CURSOR_THREAD_PREFIX: Final = "handrail-resumer:"
"""Threads named so hold resumers' cursors, not graphs."""
_CHECKPOINT_ID: Final = "00000000-0000-0000-0000-000000000000"  # one record, rewritten
_FIELD: Final = "handrail_event_seq"


class Cursor(Protocol):
    """A resumer's place: every event up to ``load()`` has been handled."""

    def load(self) -> int | None:
        """The saved sequence number, or None when there is none yet."""
        ...

    def save(self, seq: int) -> None:
        """Remember ``seq`` (called with ever larger numbers)."""
        ...


class MemoryCursor:
    """A cursor that lives as long as this object (tests, or when replays do not matter)."""

    def __init__(self, seq: int | None = None) -> None:
        self._seq = seq
        self._lock = threading.Lock()

    def load(self) -> int | None:
        with self._lock:
            return self._seq

    def save(self, seq: int) -> None:
        with self._lock:
            self._seq = seq


class CheckpointCursor:
    """The cursor in a LangGraph checkpointer: the metadata of one checkpoint on the thread
    ``handrail-resumer:<name>``, written in place (``put`` with a fixed checkpoint id,
    which the in-memory, SQLite and PostgreSQL savers store as an upsert). Give each
    resumer sharing a checkpointer its own ``name``."""

    def __init__(self, checkpointer: BaseCheckpointSaver[Any], name: str = "default") -> None:
        if not name:
            raise ValueError("a cursor needs a name")
        self.checkpointer = checkpointer
        self.name = name

    @property
    def _config(self) -> RunnableConfig:
        thread = CURSOR_THREAD_PREFIX + self.name
        return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}

    def load(self) -> int | None:
        found = self.checkpointer.get_tuple(self._config)
        if found is None:
            return None
        seq = found.metadata.get(_FIELD)
        return seq if isinstance(seq, int) else None

    def save(self, seq: int) -> None:
        checkpoint = empty_checkpoint()
        checkpoint["id"] = _CHECKPOINT_ID
        metadata: Any = {"source": "update", "step": -1, "parents": {}, _FIELD: seq}
        self.checkpointer.put(self._config, checkpoint, metadata, {})
