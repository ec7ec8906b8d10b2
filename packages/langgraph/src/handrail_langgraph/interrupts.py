"""Durable pauses: wait for a Handrail task with LangGraph's ``interrupt()`` instead of a
blocked thread.

Inside a LangGraph run that has a checkpointer, code that needs a human (a gated tool, a
review node) should not hold a thread for hours: it should pause the graph, let the
process go, and carry on when the decision lands. LangGraph's ``interrupt()`` does the
pausing; this module does the rest, the same way for every Handrail adapter built on
LangGraph (this one, and LangChain's, whose agents are LangGraph graphs). What needs no
framework (keys, the payload, the resume schema) is core's :mod:`handrail.interrupts`,
re-exported here:

1. **Where are we?** :func:`current_run` tells whether the calling code runs inside a
   LangGraph task whose graph has a checkpointer (``"__pregel_scratchpad"`` in the
   config's ``configurable`` and a checkpointer beside it), and gives the thread id and
   checkpoint namespace. Outside such a run it returns ``None`` (block instead).

2. **One task, however often the code re-runs.** On resume LangGraph runs the node (or
   tool) again from its start. :meth:`DurableRun.next_key` derives the task's idempotency
   key from the thread id, the checkpoint namespace (which names the node and its task,
   stable across resumes and restarts), an ``identity`` the caller gives (a tool call id,
   a node's name) and the position of this pause among the pauses with that identity in
   this run of the task (the first, the second, ...). Re-running the same code derives
   the same keys, so creating the task again returns the task created the first time.

3. **A payload every inbox can read.** :func:`interrupt_payload` is one plain JSON dict
   that holds, side by side: Handrail's view (``handrail``: task id, status, allowed
   decisions), LangChain's ``HITLRequest`` (``action_requests``, ``review_configs``) and,
   for a tool call, the per-call ``ToolApprovalRequest`` fields (``type``,
   ``tool_call_id``, ``name``, ``args``, ``description``), and Agent Inbox's
   ``HumanInterrupt`` (``action_request``, ``config``, ``description``).

4. **Several tasks at once.** :func:`pause_all` waits for a list of tasks (the gated calls
   of one model turn in one ``ToolNode``): it creates them all first, so reviewers see
   them together, and while any is open raises one interrupt per open task together, each
   with an id of its own, so a client can answer them with one ``{interrupt_id: ...}``
   map. The first is LangGraph's own ``interrupt()``; the others carry a stable id made
   from the task. Any resume makes it read every task again.

5. **A thread a resumer can find.** Every task made here records where it paused in its
   ``metadata["langgraph"]`` (``thread_id``, ``checkpoint_ns``, ``node``), written when the
   task is created, before the pause is checkpointed: :func:`paused_thread`
   reads it back, so a resumer that hears of a decision knows which thread to resume.

6. **The resume value only says "look again".** :class:`ResumeSignal` is the
   ``response_schema`` of the interrupt: LangGraph refuses a resume that does not fit it
   (a bare string, a number, an unknown decision type) and leaves the interrupt
   answerable. A valid resume value is *not* the decision. :func:`pause` re-reads the
   task and trusts only the decision Handrail recorded; if the task is still open (a
   resume that claims an approval nobody gave, or came too early) it interrupts again, so
   the action cannot run. Only a recorded approve or modify lets it through.

The API is :func:`pause` / :func:`apause` (the whole loop), :func:`pause_all` /
:func:`apause_all` (for several tasks) and the pieces they are made of::

    from handrail.client import decision_of
    from handrail_langgraph.interrupts import current_run, pause

    def review(state):
        if current_run() is None:
            raise RuntimeError("compile the graph with a checkpointer")
        task = pause(hr, {"kind": "review", "action": state["action"]}, identity="review")
        decision = decision_of(task)  # a recorded decision; anything else is a reject
        ...

A resumer (:class:`handrail_langgraph.HandrailResumer`) finds the thread with
:func:`paused_thread` and resumes it with ``Command(resume={interrupt.id: {"task_id":
...}})`` once the task is decided; what it sends is only checked against
:class:`ResumeSignal`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.config import get_config
from langgraph.errors import GraphInterrupt
from langgraph.types import Interrupt, interrupt

from handrail import Handrail, Task
from handrail.interrupts import (
    LANGCHAIN_DECISION,
    RESUME_SCHEMA,
    DurableRun,
    NoDurableRun,
    PausePoint,
    ResumeSignal,
    interrupt_payload,
    note_unrecorded_claims,
    pause_spec,
    paused_thread,
    side_interrupt_id,
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

# LangGraph's names for the run's internals in ``config["configurable"]``
# (``langgraph._internal._constants``; read, never written).
_SCRATCHPAD = "__pregel_scratchpad"
_CHECKPOINTER = "__pregel_checkpointer"
_RUNTIME = "__pregel_runtime"


def current_run() -> DurableRun | None:
    """The LangGraph run this code is part of, if its graph has a checkpointer; else None.

    None outside any runnable, inside a plain runnable, and inside a graph compiled
    without a checkpointer: ``interrupt()`` could not pause those, so wait by blocking."""
    try:
        config = get_config()
    except RuntimeError:  # not inside a runnable at all
        return None
    conf = config.get("configurable") or {}
    scratchpad = conf.get(_SCRATCHPAD)
    if scratchpad is None or conf.get(_CHECKPOINTER) is None:
        return None
    runtime = conf.get(_RUNTIME)
    info = getattr(runtime, "execution_info", None)
    attempt = getattr(info, "node_attempt", 1)
    return DurableRun(
        thread_id=str(conf.get("thread_id", "")),
        checkpoint_ns=str(conf.get("checkpoint_ns", "")),
        attempt=attempt if isinstance(attempt, int) else 1,
        # one per run of the task (the scratchpad itself takes no weak reference)
        _anchor=getattr(scratchpad, "get_null_resume", None),
    )


def graph_task_scope() -> str | None:
    """A short, stable name for the LangGraph task this code runs in (its thread id and
    checkpoint namespace), with or without a checkpointer; None outside any graph.

    The same task re-run (a retry, a resume) has the same scope; two runs of a graph never
    share one, even on the same thread. Adapters add it to keys made from tool call ids,
    which some models repeat from one run to the next."""
    try:
        conf = get_config().get("configurable") or {}
    except RuntimeError:
        return None
    if _SCRATCHPAD not in conf:
        return None
    material = json.dumps([str(conf.get("thread_id", "")), str(conf.get("checkpoint_ns", ""))])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _run_or_fail(run: DurableRun | None) -> DurableRun:
    run = run or current_run()
    if run is None:
        raise NoDurableRun(
            "a durable pause needs a LangGraph run with a checkpointer "
            "(compile the graph with checkpointer=...); outside one, wait by blocking"
        )
    return run


def _interrupt(run: DurableRun, waiting: list[tuple[PausePoint, Task]]) -> Any:
    """Pause for every open task at once; the resume value when resumed.

    The first task's interrupt is ``interrupt()``'s own (its resume value is checked
    against :class:`ResumeSignal`); the others ride along in the same ``GraphInterrupt``
    with ids of their own. Resuming any of them runs the code again, which reads every
    task again: the resume value is never the decision."""
    (point, task), *beside = waiting
    try:
        return interrupt(point.payload(task), response_schema=ResumeSignal)
    except GraphInterrupt as paused:
        if not beside:
            raise
        others = tuple(
            Interrupt(
                value=p.payload(t),
                id=side_interrupt_id(run.checkpoint_ns, t.id),
                response_schema=RESUME_SCHEMA,
            )
            for p, t in beside
        )
        raise GraphInterrupt((*paused.args[0], *others)) from None


def _open(points: Sequence[PausePoint], tasks: list[Task]) -> list[tuple[PausePoint, Task]]:
    return [(p, t) for p, t in zip(points, tasks, strict=True) if not t.terminal]


def pause_all(
    client: Handrail, points: Sequence[PausePoint], *, run: DurableRun | None = None
) -> list[Task]:
    """Get or create the task of every point, and return them, in order, once all are
    terminal. While any is open, pause the graph with one interrupt per open task (raised
    together; let LangGraph's ``GraphInterrupt`` propagate); each resume reads every task
    again. Raises :class:`NoDurableRun` outside a LangGraph run with a checkpointer."""
    run = _run_or_fail(run)
    tasks = [client.tasks.create(pause_spec(point, run)) for point in points]
    while waiting := _open(points, tasks):
        signal = _interrupt(run, waiting)
        tasks = [t if t.terminal else client.tasks.get(t.id) for t in tasks]
        note_unrecorded_claims(tasks, signal)
    return tasks


async def apause_all(
    client: Handrail, points: Sequence[PausePoint], *, run: DurableRun | None = None
) -> list[Task]:
    """:func:`pause_all` for async code."""
    run = _run_or_fail(run)
    tasks = [await client.tasks.acreate(pause_spec(point, run)) for point in points]
    while waiting := _open(points, tasks):
        signal = _interrupt(run, waiting)
        tasks = [t if t.terminal else await client.tasks.aget(t.id) for t in tasks]
        note_unrecorded_claims(tasks, signal)
    return tasks


def pause(
    client: Handrail,
    spec: Mapping[str, Any],
    *,
    identity: str = "",
    run: DurableRun | None = None,
    description: str | None = None,
    tool_call_id: str | None = None,
) -> Task:
    """Get or create the task ``spec`` describes for this point of the graph, and return
    it once it is terminal (decided, answered, expired, cancelled, failed).

    Until then, pause the graph with ``interrupt()``: the first time this raises
    LangGraph's ``GraphInterrupt`` (let it propagate); after a resume, the code runs
    again, finds the same task (see :meth:`DurableRun.next_key`) and reads its recorded
    outcome, pausing again while it is still open. ``spec``'s ``idempotency_key`` is
    replaced by the derived one, so the spec must be the same on every run (no
    timestamps or random values in it). Read a review's outcome with
    ``handrail.client.decision_of(task)``: anything but a recorded approve or modify is
    a reject. Raises :class:`NoDurableRun` outside a LangGraph run with a checkpointer."""
    run = _run_or_fail(run)
    point = PausePoint(spec, run.next_key(identity), description, tool_call_id)
    (task,) = pause_all(client, [point], run=run)
    return task


async def apause(
    client: Handrail,
    spec: Mapping[str, Any],
    *,
    identity: str = "",
    run: DurableRun | None = None,
    description: str | None = None,
    tool_call_id: str | None = None,
) -> Task:
    """:func:`pause` for async code."""
    run = _run_or_fail(run)
    point = PausePoint(spec, run.next_key(identity), description, tool_call_id)
    (task,) = await apause_all(client, [point], run=run)
    return task
