"""Durable pauses: wait for a Handrail task with LangGraph's ``interrupt()`` instead of a
blocked thread.

This is :mod:`handrail_langgraph.interrupts` (a LangChain v1 agent is a LangGraph graph,
so both adapters pause it the same way), kept under this name for code that imports it
from here; the framework-free half (keys, the payload, the resume schema) is core's
:mod:`handrail.interrupts`. See :mod:`handrail_langgraph.interrupts` for how a pause
works::

    from handrail.client import decision_of
    from handrail_langchain.interrupts import current_run, pause
"""

from handrail_langgraph.interrupts import (
    LANGCHAIN_DECISION,
    DurableRun,
    NoDurableRun,
    PausePoint,
    ResumeSignal,
    apause,
    apause_all,
    current_run,
    graph_task_scope,
    interrupt_payload,
    pause,
    pause_all,
    paused_thread,
    task_id_of,
    task_key,
)

__all__ = [
    "LANGCHAIN_DECISION",
    "DurableRun",
    "NoDurableRun",
    "PausePoint",
    "ResumeSignal",
    "apause",
    "apause_all",
    "current_run",
    "graph_task_scope",
    "interrupt_payload",
    "pause",
    "pause_all",
    "paused_thread",
    "task_id_of",
    "task_key",
]
