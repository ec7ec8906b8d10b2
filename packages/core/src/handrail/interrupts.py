"""The framework-free half of pausing an agent run for a Handrail task.

An adapter that pauses a graph (LangGraph's ``interrupt()``) instead of blocking a thread
needs the same few things whatever framework it binds to, and none of them imports one:

- **Keys.** :func:`task_key` is the idempotency key of the task for one pause point
  (thread id, checkpoint namespace, an identity the caller gives, the position of the
  pause); :class:`DurableRun` counts the positions within one run of a graph task, so a
  re-run (after a resume) derives the same keys and finds the tasks it created.
- **A payload every inbox can read.** :func:`interrupt_payload` is one plain JSON dict
  holding Handrail's view (``handrail``: task id, status, allowed decisions), LangChain's
  ``HITLRequest`` (``action_requests``, ``review_configs``), the per-call
  ``ToolApprovalRequest`` fields and Agent Inbox's ``HumanInterrupt``. :func:`task_id_of`
  reads the task id back from an interrupt; :func:`paused_thread` reads, from a task,
  the thread it paused (its ``metadata["langgraph"]``, written by :func:`pause_spec`:
  thread id, checkpoint namespace and node), :func:`paused_node` where in it.
- **One key per decided action.** :func:`execution_key` (task id and decision) for making
  the side effect after a review idempotent.
- **The resume value only says "look again".** :class:`ResumeSignal` is the schema a
  resume value must fit; it is never the decision. :func:`note_unrecorded_claims` logs a
  resume that claims a decision Handrail has not recorded.
- **Decision names.** :func:`allowed_decisions` reads Handrail's names and LangChain's
  (``edit`` for ``modify``); :data:`LANGCHAIN_DECISION` maps back.

The half that calls the framework (reading the run's config, raising the interrupt, the
pause loop) lives in the adapter: ``handrail_langgraph.interrupts``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .models import DecisionType, Kind, Task

__all__ = [
    "LANGCHAIN_DECISION",
    "DurableRun",
    "NoDurableRun",
    "PausePoint",
    "ResumeSignal",
    "allowed_decisions",
    "execution_key",
    "interrupt_payload",
    "note_unrecorded_claims",
    "pause_spec",
    "paused_node",
    "paused_thread",
    "side_interrupt_id",
    "task_id_of",
    "task_key",
]

log = logging.getLogger("handrail.interrupts")

LANGCHAIN_DECISION: dict[DecisionType, str] = {
    DecisionType.APPROVE: "approve",
    DecisionType.MODIFY: "edit",
    DecisionType.REJECT: "reject",
    DecisionType.RESPOND: "respond",
}
"""Handrail's decision types by LangChain's names (Handrail's ``modify`` is ``edit``)."""

_NAMES: dict[str, DecisionType] = {
    "approve": DecisionType.APPROVE,
    "reject": DecisionType.REJECT,
    "modify": DecisionType.MODIFY,
    "edit": DecisionType.MODIFY,  # LangChain's name for it
    "respond": DecisionType.RESPOND,
}


def allowed_decisions(names: Iterable[str | DecisionType]) -> tuple[DecisionType, ...]:
    """Decision names (Handrail's, or LangChain's ``edit`` for ``modify``) as Handrail's
    types, in order, without repeats. Unknown names and an empty list are refused."""
    found: list[DecisionType] = []
    for name in names:
        kind = _NAMES.get(str(getattr(name, "value", name)))
        if kind is None:
            known = ", ".join(sorted(_NAMES))
            raise ValueError(f"unknown decision {name!r}: use {known}")
        if kind not in found:
            found.append(kind)
    if not found:
        raise ValueError("allowed_decisions must name at least one decision")
    return tuple(found)


# ---------------------------------------------------------------- keys


def task_key(thread_id: str, checkpoint_ns: str, identity: str, position: int) -> str:
    """The idempotency key of the Handrail task for one pause point of a graph.

    Pure: the same four values always give the same key (at most 80 characters)."""
    material = json.dumps([thread_id, checkpoint_ns, identity, position], separators=(",", ":"))
    return "langgraph:" + hashlib.sha256(material.encode()).hexdigest()


# Pause positions per run of a graph task. A run of a task has one anchor (LangGraph: its
# scratchpad's ``get_null_resume`` function), shared by everything that runs inside it;
# it is held weakly, so an entry goes when its run ends.
_positions: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, int]]] = weakref.WeakKeyDictionary()
_positions_lock = threading.Lock()


@dataclass(frozen=True)
class DurableRun:
    """The graph task the calling code runs in, in a graph with a checkpointer.

    ``_anchor`` is an object that lives exactly as long as this run of the task (the
    adapter that finds the run gives it); without one every pause is the first."""

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


class NoDurableRun(RuntimeError):
    """A pause was asked for outside a graph run with a checkpointer: a setup error,
    raised rather than answered (nothing runs)."""


# ---------------------------------------------------------------- the payload


def interrupt_payload(
    task: Task, *, description: str | None = None, tool_call_id: str | None = None
) -> dict[str, Any]:
    """The interrupt value for ``task``: plain JSON that Handrail clients, LangChain's
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
    """The Handrail task id in an interrupt (or its value) made from
    :func:`interrupt_payload`, or None for any other interrupt: how a resumer finds which
    interrupt a decision answers."""
    value = getattr(value, "value", value)
    if isinstance(value, Mapping):
        handrail = value.get("handrail")
        if isinstance(handrail, Mapping) and isinstance(handrail.get("task_id"), str):
            return str(handrail["task_id"])
    return None


def paused_thread(task: Task) -> str | None:
    """The graph thread paused on ``task`` (from its ``metadata["langgraph"]``), or None
    for a task no pause made."""
    where = task.metadata.get("langgraph")
    if isinstance(where, Mapping) and isinstance(where.get("thread_id"), str):
        return str(where["thread_id"])
    return None


def paused_node(task: Task) -> tuple[str, str] | None:
    """Where in its thread ``task`` paused: the checkpoint namespace and the node (from its
    ``metadata["langgraph"]``, written at create, before the pause is checkpointed), or
    None for a task no pause made."""
    where = task.metadata.get("langgraph")
    if not isinstance(where, Mapping) or not isinstance(where.get("checkpoint_ns"), str):
        return None
    namespace = str(where["checkpoint_ns"])
    node = where.get("node")
    return namespace, str(node) if isinstance(node, str) else _node_of(namespace)


def _node_of(checkpoint_ns: str) -> str:
    """The top-level node a checkpoint namespace names (``"review:<task id>|..."``)."""
    return checkpoint_ns.split("|", 1)[0].rsplit(":", 1)[0]


def execution_key(task: Task) -> str:
    """A stable key for the action a decided ``task`` lets run: its id and the recorded
    decision (``"handrail:<task id>:approve"``). The same on every run of the code after
    the review (LangGraph runs a node again when its process dies inside it), so a side
    effect done once per key (a payment provider's idempotency key, a unique row) is done
    once however often the node runs. A task with no decision gives its status instead."""
    outcome = task.decision.type.value if task.decision is not None else task.status.value
    return f"handrail:{task.id}:{outcome}"


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


def pause_spec(point: PausePoint, run: DurableRun) -> dict[str, Any]:
    """The task to create for ``point``: its spec with its key, and where it pauses noted
    in its metadata (the same on every run of the task, as the key requires)."""
    metadata = dict(point.spec.get("metadata") or {})
    metadata["langgraph"] = {
        "thread_id": run.thread_id,
        "checkpoint_ns": run.checkpoint_ns,
        "node": _node_of(run.checkpoint_ns),
    }
    return {**point.spec, "idempotency_key": point.key, "metadata": metadata}


def side_interrupt_id(checkpoint_ns: str, task_id: str) -> str:
    """A stable interrupt id for a task paused beside the first (32 hex, as LangGraph's)."""
    material = f"{checkpoint_ns}|handrail|{task_id}".encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


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
    that is not an object, or whose ``type`` is no decision type, is refused:
    ``pydantic.ValidationError``, and the interrupt stays answerable."""

    model_config = ConfigDict(extra="allow", frozen=True)

    task_id: str | None = None
    type: ResumeType | None = None
    decisions: list[dict[str, Any]] | None = None


RESUME_SCHEMA: dict[str, Any] = ResumeSignal.model_json_schema()
""":class:`ResumeSignal` as JSON Schema (for interrupts raised beside the first)."""


def note_unrecorded_claims(tasks: Iterable[Task], signal: Any) -> None:
    """Log a resume that claims a decision Handrail has not recorded. It changes nothing:
    the tasks are read again and the graph pauses again while one is open."""
    if not isinstance(signal, ResumeSignal) or signal.type is None:
        return
    for task in tasks:
        if signal.task_id in (None, task.id) and not task.terminal:
            log.warning(
                "a resume claiming %r reached task %s, which no one has decided (%s): "
                "pausing again",
                signal.type,
                task.id,
                task.status.value,
            )
