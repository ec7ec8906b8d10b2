"""Handrail for LangGraph: review nodes that pause a graph until a human decides, a tool
node that gates the tools you choose, and resumers that carry the graph on when the
decision lands.

- :func:`review_node` pauses the graph (``interrupt()``) until a human reviews the action
  in the state, then routes by the recorded decision; :func:`blocking_review_node` blocks
  instead (no checkpointer needed).
- :class:`ReviewedToolNode` is ``ToolNode`` with the chosen tools gated, one review task per
  call.
- :class:`HandrailResumer` resumes each paused thread once its decision is recorded: by
  following the organisation's event stream (:meth:`HandrailResumer.run`) or from Handrail
  webhooks (:meth:`HandrailResumer.router`).
- :mod:`handrail_langgraph.interrupts` pauses a run for a Handrail task (the pause loop;
  its framework-free half is core's :mod:`handrail.interrupts`), and
  :mod:`handrail_langgraph.tool_calls` reviews LangChain tool calls on a run: the pieces
  the LangChain adapter builds on. This adapter needs neither it nor ``langchain``.
"""

from ._cursor import CheckpointCursor, Cursor, MemoryCursor
from ._locks import LocalThreadLock, PostgresThreadLock, ThreadLock
from ._resumer import HandrailResumer, Resumption, ResumptionStatus
from ._review_node import ReviewOutcome, blocking_review_node, review_node
from ._tool_node import ReviewedToolNode

__all__ = [
    "CheckpointCursor",
    "Cursor",
    "HandrailResumer",
    "LocalThreadLock",
    "MemoryCursor",
    "PostgresThreadLock",
    "Resumption",
    "ResumptionStatus",
    "ReviewOutcome",
    "ReviewedToolNode",
    "ThreadLock",
    "blocking_review_node",
    "review_node",
]
