"""Durable pauses: wait for a Handrail task with LangGraph's ``interrupt()`` instead of a
blocked thread.

Inside a LangGraph run that has a checkpointer, code that needs a human (a gated tool, a
review node) should not hold a thread for hours: it should pause the graph, let the
process go, and carry on when the decision lands. LangGraph's ``interrupt()`` does the
pausing; this module does the rest, the same way for every Handrail adapter:

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
   ``metadata["langgraph"]`` (``thread_id``, ``checkpoint_ns``): :func:`paused_thread`
   reads it back, so a resumer that hears of a decision knows which thread to resume.

6. **The resume value only says "look again".** :class:`ResumeSignal` is the
   ``response_schema`` of the interrupt: LangGraph refuses a resume that does not fit it
   (a bare string, a number, an unknown decision type) and leaves the interrupt
   answerable. A valid resume value is *not* the decision. :func:`pause` re-reads the
   task and trusts only the decision Handrail recorded; if the task is still open (a
   resume that claims an approval nobody gave, or came too early) it interrupts again, so
   the action cannot run. Only a recorded approve or modify lets it through.

The API is :func:`pause` / :func:`apause` (the whole loop), :func:`pause_all` /
:func:`apause_all` (for several tasks) and the pieces they are made of, for adapters that
need them separately (the LangGraph adapter's review node, tool node and resumer)::

    from handrail.client import decision_of
    from handrail_langchain.interrupts import current_run, pause

    def review(state):
        if current_run() is None:
            raise RuntimeError("compile the graph with a checkpointer")
        task = pause(hr, {"kind": "review", "action": state["action"]}, identity="review")
        decision = decision_of(task)  # a recorded decision; anything else is a reject
        ...

A resumer (``handrail_langgraph.HandrailResumer``) finds the thread with
:func:`paused_thread` and resumes it with ``Command(resume={interrupt.id: {"task_id":
...}})`` once the task is decided; what it sends is only checked against
:class:`ResumeSignal`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.config import get_config
from langgraph.errors import GraphInterrupt
from langgraph.types import Interrupt, interrupt
from pydantic import BaseModel, ConfigDict

from handrail import DecisionType, Handrail, Kind, Task

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

log = logging.getLogger(__name__)

# LangGraph's names for the run's internals in ``config["configurable"]``
# (``langgraph._internal._constants``; read, never written).
_SCRATCHPAD = "__pregel_scratchpad"
_CHECKPOINTER = "__pregel_checkpointer"
_RUNTIME = "__pregel_runtime"

LANGCHAIN_DECISION: dict[DecisionType, str] = {
    DecisionType.APPROVE: "approve",
    DecisionType.MODIFY: "edit",
    DecisionType.REJECT: "reject",
    DecisionType.RESPOND: "respond",
}
"""Handrail's decision types by LangChain's names (Handrail's ``modify`` is ``edit``)."""


def task_key(thread_id: str, checkpoint_ns: str, identity: str, position: int) -> str:
    """The idempotency key of the Handrail task for one pause point of a graph.

    Pure: the same four values always give the same key (at most 80 characters)."""
    material = json.dumps([thread_id, checkpoint_ns, identity, position], separators=(",", ":"))
    return "langgraph:" + hashlib.sha256(material.encode()).hexdigest()


# Pause positions per run of a LangGraph task. A run of a task has one scratchpad, shared
# by everything that runs inside it; it is keyed here by its ``get_null_resume`` function
# (the scratchpad itself takes no weak reference), so an entry goes when its run ends.
_positions: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, int]]] = weakref.WeakKeyDictionary()
_positions_lock = threading.Lock()


@dataclass(frozen=True)
class DurableRun:
    """The LangGraph task the calling code runs in, in a graph with a checkpointer."""

    thread_id: str
    checkpoint_ns: str
    attempt: int = 1
    _anchor: Any = field(default=None, repr=False, compare=False)

    def next_key(self, identity: str = "") -> str:
        """The idempotency key for the next pause with ``identity`` in this run of the task.

        The first call for an identity gives position 0, the next 1, and so on; a run of
        the task after a resume (or a retry) starts again from 0, so it finds the tasks
        the earlier run created. Give parallel pauses inside one task (the tool calls of
        one ``ToolNode``) distinct identities: their order is not stable."""
        position = 0
        if self._anchor is not None:
            with _positions_lock:
                attempt, counts = _positions.get(self._anchor, (self.attempt, {}))
                if attempt != self.attempt:  # a retry of the task starts afresh
                    counts = {}
                position = counts.get(identity, 0)
                counts[identity] = position + 1
                _positions[self._anchor] = (self.attempt, counts)
        return task_key(self.thread_id, self.checkpoint_ns, identity, position)


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


# ---------------------------------------------------------------- the payload


def interrupt_payload(
    task: Task, *, description: str | None = None, tool_call_id: str | None = None
) -> dict[str, Any]:
    """The ``interrupt()`` value for ``task``: plain JSON that Handrail clients, LangChain's
    HITL clients (``HITLRequest``, per-call ``ToolApprovalRequest``) and Agent Inbox
    (``HumanInterrupt``) each read in their own terms."""
    text = description or task.instructions or task.title
    handrail: dict[str, Any] = {
        "task_id": task.id,
        "kind": task.kind.value,
        "status": task.status.value,
        "title": task.title,
        "expires_at": task.expires_at.isoformat(),
        "idempotency_key": task.idempotency_key,
    }
    review_config: dict[str, Any]
    if task.kind is Kind.REVIEW and task.action is not None:
        name, args = task.action.name, dict(task.action.args)
        allowed = task.allowed_decisions
        handrail["allowed_decisions"] = [d.value for d in allowed]
        review_config = {
            "action_name": name,
            "allowed_decisions": [LANGCHAIN_DECISION[d] for d in allowed],
        }
        if task.action.args_schema is not None:
            review_config["args_schema"] = dict(task.action.args_schema)
        inbox = {
            "allow_accept": DecisionType.APPROVE in allowed,
            "allow_edit": DecisionType.MODIFY in allowed,
            "allow_respond": DecisionType.RESPOND in allowed,
            "allow_ignore": DecisionType.REJECT in allowed,
        }
    else:  # a judgment: the human answers in words (or JSON that fits the schema)
        name, args = task.task_type, {"question": task.title, **task.payload}
        handrail["output_schema"] = task.output_schema
        review_config = {"action_name": name, "allowed_decisions": ["respond"]}
        inbox = {
            "allow_accept": False,
            "allow_edit": False,
            "allow_respond": True,
            "allow_ignore": False,
        }
    value: dict[str, Any] = {
        "handrail": handrail,
        # LangChain HumanInTheLoopMiddleware: HITLRequest
        "action_requests": [{"name": name, "args": args, "description": text}],
        "review_configs": [review_config],
        # Agent Inbox: HumanInterrupt
        "action_request": {"action": name, "args": args},
        "config": inbox,
        "description": text,
        # LangChain per-call: ToolApprovalRequest (with "type" when it is a tool call)
        "name": name,
        "args": args,
    }
    if tool_call_id is not None:
        value["type"] = "tool_approval"
        value["tool_call_id"] = tool_call_id
    return value


def task_id_of(value: Any) -> str | None:
    """The Handrail task id in an interrupt (or its value) made by :func:`pause`, or None
    for any other interrupt: how a resumer finds which interrupt a decision answers."""
    value = getattr(value, "value", value)
    if isinstance(value, Mapping):
        handrail = value.get("handrail")
        if isinstance(handrail, Mapping) and isinstance(handrail.get("task_id"), str):
            return str(handrail["task_id"])
    return None


def paused_thread(task: Task) -> str | None:
    """The LangGraph thread paused on ``task`` (from its ``metadata["langgraph"]``), or
    None for a task no pause made."""
    where = task.metadata.get("langgraph")
    if isinstance(where, Mapping) and isinstance(where.get("thread_id"), str):
        return str(where["thread_id"])
    return None


# ---------------------------------------------------------------- the resume value

ResumeType = Literal[
    "approve", "modify", "reject", "respond", "edit", "accept", "ignore", "response"
]


class ResumeSignal(BaseModel):
    """The ``response_schema`` of a Handrail interrupt: what may resume it.

    Resuming only tells the paused code to look at the task again; the decision it acts
    on is the one Handrail recorded. Any JSON object fits, so a resumer can send the
    task id (``{"task_id": ...}``), a Handrail decision, or what LangChain's HITL clients
    (``{"type": "approve"}``, ``{"decisions": [...]}``) and Agent Inbox send. A value
    that is not an object, or whose ``type`` is no decision type, is refused: LangGraph
    raises ``pydantic.ValidationError`` and the interrupt stays answerable."""

    model_config = ConfigDict(extra="allow", frozen=True)

    task_id: str | None = None
    type: ResumeType | None = None
    decisions: list[dict[str, Any]] | None = None


def _looked_again(tasks: list[Task], signal: Any) -> None:
    """Note a resume that claims a decision Handrail has not recorded (it changes
    nothing: the tasks are read again and the graph pauses again while one is open)."""
    if not isinstance(signal, ResumeSignal) or signal.type is None:
        return
    named = [t for t in tasks if signal.task_id in (None, t.id)]
    for task in named:
        if not task.terminal:
            log.warning(
                "a resume claiming %r reached task %s, which no one has decided (%s): "
                "pausing again",
                signal.type,
                task.id,
                task.status.value,
            )


class NoDurableRun(RuntimeError):
    """A pause was asked for outside a LangGraph run with a checkpointer: a setup error,
    raised rather than answered (nothing runs)."""


@dataclass(frozen=True)
class PausePoint:
    """One task to pause for: what to create (``spec``, without its idempotency key), the
    key (see :meth:`DurableRun.next_key` and :func:`task_key`), and for the payload, a
    description and the tool call it gates."""

    spec: Mapping[str, Any]
    key: str
    description: str | None = None
    tool_call_id: str | None = None

    def payload(self, task: Task) -> dict[str, Any]:
        return interrupt_payload(task, description=self.description, tool_call_id=self.tool_call_id)


def _spec(point: PausePoint, run: DurableRun) -> dict[str, Any]:
    """The task to create: ``point.spec`` with its key, and where it pauses noted in its
    metadata (the same on every run of the task, as the key requires)."""
    metadata = dict(point.spec.get("metadata") or {})
    metadata["langgraph"] = {"thread_id": run.thread_id, "checkpoint_ns": run.checkpoint_ns}
    return {**point.spec, "idempotency_key": point.key, "metadata": metadata}


def _run_or_fail(run: DurableRun | None) -> DurableRun:
    run = run or current_run()
    if run is None:
        raise NoDurableRun(
            "a durable pause needs a LangGraph run with a checkpointer "
            "(compile the graph with checkpointer=...); outside one, wait by blocking"
        )
    return run


_SCHEMA = ResumeSignal.model_json_schema()


def _side_id(checkpoint_ns: str, task_id: str) -> str:
    """A stable interrupt id for a task paused beside the first (32 hex, as LangGraph's)."""
    material = f"{checkpoint_ns}|handrail|{task_id}".encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


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
                value=p.payload(t), id=_side_id(run.checkpoint_ns, t.id), response_schema=_SCHEMA
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
    tasks = [client.tasks.create(_spec(point, run)) for point in points]
    while waiting := _open(points, tasks):
        signal = _interrupt(run, waiting)
        tasks = [t if t.terminal else client.tasks.get(t.id) for t in tasks]
        _looked_again(tasks, signal)
    return tasks


async def apause_all(
    client: Handrail, points: Sequence[PausePoint], *, run: DurableRun | None = None
) -> list[Task]:
    """:func:`pause_all` for async code."""
    run = _run_or_fail(run)
    tasks = [await client.tasks.acreate(_spec(point, run)) for point in points]
    while waiting := _open(points, tasks):
        signal = _interrupt(run, waiting)
        tasks = [t if t.terminal else await client.tasks.aget(t.id) for t in tasks]
        _looked_again(tasks, signal)
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
