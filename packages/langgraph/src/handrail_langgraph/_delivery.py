"""One thread carried past its decided pause: the resume a :class:`HandrailResumer` runs.

A decision is delivered to its thread when the thread no longer needs it: the thread has
finished, or waits on a task still open, and the step that paused on the decided task is
not left half done. Three states of the checkpoint lead there:

- **Paused on the task** (its interrupt is pending): answer the interrupt with
  ``Command(resume=...)`` and run; repeat while it waits on a decided task.
- **Stopped inside the step that paused** (the step is still to run, or the thread's
  latest checkpoint is older than the task: LangGraph saves checkpoints in the background
  while the next step runs; no interrupt was saved): the task exists, so the pause's
  process got as far as creating it. If the task
  is young (``stall_after`` seconds), that process is most likely about to save the
  interrupt (a decision that raced the checkpoint): try again in a moment (``waiting``).
  Older, the process died between the create and the checkpoint: continue the thread with
  ``invoke(None)``; the node runs again, finds the same task decided, and goes on.
- **Stopped after the pause** (a later step is still to run, nothing is pending, and the
  thread did pause on this task since its last new input): a resume of it died half way
  (a resumer killed inside the node after the review): continue it with ``invoke(None)``.

Anything else (finished, paused on an open task, a new input since, another graph's
thread) needs nothing: ``not_pending``. The caller holds the thread's lock throughout.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.pregel import Pregel
from langgraph.types import Command, Interrupt, PregelTask, StateSnapshot

from handrail import Handrail, NotFound, Task
from handrail.interrupts import paused_node, task_id_of

__all__ = ["Resumption", "ResumptionStatus", "ThreadRunner"]

log = logging.getLogger("handrail_langgraph")

ResumptionStatus = Literal[
    "resumed", "continued", "waiting", "not_pending", "undecided", "not_paused", "not_found"
]


@dataclass(frozen=True)
class Resumption:
    """What one attempt to resume came to.

    ``status``: ``"resumed"`` (interrupts were answered and the thread ran again: on to
    its next step, or to a pause for a task still open; ``interrupts`` and ``tasks`` say
    which, over every round), ``"continued"`` (the thread had stopped half way through or
    after its paused step, with nothing pending, and ran on from its last checkpoint),
    ``"waiting"`` (the task is decided but the pause is not checkpointed yet: try again in
    a moment), ``"not_pending"`` (the task is decided and its thread needs nothing more:
    already resumed, or not this graph's), ``"undecided"`` (the task is still open),
    ``"not_paused"`` (no Handrail pause made the task), ``"not_found"`` (no such task)."""

    status: ResumptionStatus
    task_id: str | None = None
    thread_id: str | None = None
    interrupts: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()

    @property
    def settled(self) -> bool:
        """Whether this decision needs no more attempts (all but ``waiting``)."""
        return self.status != "waiting"


def answer(interrupts: Sequence[Interrupt], decided: Mapping[str, Task]) -> dict[str, Any]:
    """The resume map for the pending interrupts whose tasks are in ``decided``."""
    found: dict[str, Any] = {}
    for pending in interrupts:
        task_id = task_id_of(pending)
        if task_id is not None and task_id in decided:
            found[pending.id] = {"task_id": task_id}
    return found


Verdict = Literal["settled", "wait", "continue"]


def _pregel_task(checkpoint_ns: str) -> str:
    """The top-level LangGraph task id in a checkpoint namespace (``node:<id>|...``)."""
    return checkpoint_ns.split("|", 1)[0].rsplit(":", 1)[-1]


def _when(snapshot: StateSnapshot) -> datetime | None:
    if not snapshot.created_at:
        return None
    at = datetime.fromisoformat(snapshot.created_at)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class _Since:
    """Reads a thread's checkpoints newest first, back to the one paused on ``task``:
    did the thread pause on it with no new input since (then a stop after it is a resume
    that died half way)?"""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.found: bool | None = None

    def feed(self, snapshot: StateSnapshot) -> bool:
        """Take one more (older) checkpoint; True once the answer is known."""
        if any(task_id_of(i) == self.task.id for i in snapshot.interrupts):
            self.found = True
        elif (snapshot.metadata or {}).get("source") == "input":
            self.found = False  # a new run began after the pause: not ours to continue
        else:
            when = _when(snapshot)
            if when is not None and when < self.task.created_at:
                self.found = False  # older than the task: it never paused here
        return self.found is not None


def _stuck(snapshot: StateSnapshot) -> bool:
    """A thread with a step left to run or to apply (its tasks' writes saved, the step
    not) and no interrupt pending: its run stopped, or is still under way somewhere."""
    return bool(snapshot.tasks) and not snapshot.interrupts


def _step(snapshot: StateSnapshot, task: Task) -> PregelTask | None:
    """The LangGraph task that paused on ``task``, if it belongs to ``snapshot``'s step."""
    where = paused_node(task)
    if where is None:
        return None
    step = _pregel_task(where[0])
    return next((t for t in snapshot.tasks if t.id == step), None)


def _interrupted(found: CheckpointTuple | None, task: Task) -> bool:
    """Whether the checkpoint's saved writes hold an interrupt for ``task`` (LangGraph keeps
    a step's interrupt among its writes after a resume, until the step is applied)."""
    for write in (found.pending_writes or ()) if found is not None else ():
        values = write[2] if isinstance(write[2], list | tuple) else [write[2]]
        if any(isinstance(v, Interrupt) and task_id_of(v) == task.id for v in values):
            return True
    return False


class ThreadRunner:
    """Carries threads of ``graph`` on past decided pauses (see the module docstring)."""

    def __init__(
        self,
        graph: Pregel[Any, Any, Any, Any],
        client: Handrail,
        checkpointer: BaseCheckpointSaver[Any],
        *,
        max_rounds: int,
        stall_after: float,
    ) -> None:
        self.graph = graph
        self.client = client
        self.checkpointer = checkpointer
        self.max_rounds = max_rounds
        self.stall_after = stall_after

    def _young(self, task: Task) -> bool:
        return (datetime.now(UTC) - task.created_at).total_seconds() < self.stall_after

    def _behind(self, snapshot: StateSnapshot, task: Task) -> Verdict:
        """The thread never paused on ``task``: is its pause still to be checkpointed?"""
        step = _step(snapshot, task)
        latest = _when(snapshot)
        if (step is not None and step.result is None) or (
            latest is not None and latest < task.created_at  # its run's checkpoints lag
        ):
            return "wait" if self._young(task) else "continue"
        return "settled"  # a run that went past the step without pausing on the task

    def _verdict(
        self, snapshot: StateSnapshot, task: Task, history: Iterable[StateSnapshot]
    ) -> Verdict:
        if not _stuck(snapshot):
            return "settled"
        if _interrupted(self.checkpointer.get_tuple(snapshot.config), task):
            return "continue"
        since = _Since(task)
        for older in history:
            if since.feed(older):
                break
        return "continue" if since.found else self._behind(snapshot, task)

    async def _averdict(
        self, snapshot: StateSnapshot, task: Task, history: AsyncIterator[StateSnapshot]
    ) -> Verdict:
        if not _stuck(snapshot):
            return "settled"
        if _interrupted(await self.checkpointer.aget_tuple(snapshot.config), task):
            return "continue"
        since = _Since(task)
        async for older in history:
            if since.feed(older):
                break
        return "continue" if since.found else self._behind(snapshot, task)

    def _decided(self, interrupts: Sequence[Interrupt], decided: dict[str, Task]) -> None:
        """Note in ``decided`` the terminal tasks among those ``interrupts`` wait for."""
        for pending in interrupts:
            task_id = task_id_of(pending)
            if task_id is None or task_id in decided:
                continue
            with contextlib.suppress(NotFound):
                task = self.client.tasks.get(task_id)
                if task.terminal:
                    decided[task_id] = task

    async def _adecided(self, interrupts: Sequence[Interrupt], decided: dict[str, Task]) -> None:
        for pending in interrupts:
            task_id = task_id_of(pending)
            if task_id is None or task_id in decided:
                continue
            with contextlib.suppress(NotFound):
                task = await self.client.tasks.aget(task_id)
                if task.terminal:
                    decided[task_id] = task

    def resume(
        self,
        thread_id: str,
        config: RunnableConfig,
        decided: dict[str, Task],
        task: Task | None = None,
    ) -> Resumption:
        """Under the thread's lock: carry it on while it waits on a decided task (a
        resumed thread may pause again on a task decided meanwhile); with ``task`` (the
        decision being delivered), also continue a thread stopped in or after its pause."""
        rounds = _Rounds(thread_id)
        snapshot = self.graph.get_state(config)
        pending = snapshot.interrupts
        if task is not None and not pending:
            verdict = self._verdict(snapshot, task, self.graph.get_state_history(config))
            if verdict == "wait":
                return Resumption("waiting", task.id, thread_id)
            if verdict == "continue":
                pending = self.graph.invoke(None, config, version="v2").interrupts
                rounds.continued = True
        for _ in range(self.max_rounds):
            self._decided(pending, decided)
            resume = answer(pending, decided)
            if not resume:
                return rounds.outcome()
            # what the run leaves pending is what it raised: the tasks it did not finish
            # all ran again (and we hold the thread), so its result is the thread's state
            pending = self.graph.invoke(Command(resume=resume), config, version="v2").interrupts
            rounds.note(resume)
        return rounds.outcome(stopped=self.max_rounds)

    async def aresume(
        self,
        thread_id: str,
        config: RunnableConfig,
        decided: dict[str, Task],
        task: Task | None = None,
    ) -> Resumption:
        """:meth:`resume` with the graph's async API."""
        rounds = _Rounds(thread_id)
        snapshot = await self.graph.aget_state(config)
        pending = snapshot.interrupts
        if task is not None and not pending:
            history = self.graph.aget_state_history(config)
            verdict = await self._averdict(snapshot, task, history)
            if verdict == "wait":
                return Resumption("waiting", task.id, thread_id)
            if verdict == "continue":
                pending = (await self.graph.ainvoke(None, config, version="v2")).interrupts
                rounds.continued = True
        for _ in range(self.max_rounds):
            await self._adecided(pending, decided)
            resume = answer(pending, decided)
            if not resume:
                return rounds.outcome()
            done = await self.graph.ainvoke(Command(resume=resume), config, version="v2")
            pending = done.interrupts
            rounds.note(resume)
        return rounds.outcome(stopped=self.max_rounds)


class _Rounds:
    """What the rounds of one thread's resume answered."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.interrupts: list[str] = []
        self.tasks: list[str] = []
        self.continued = False

    def note(self, resume: Mapping[str, Any]) -> None:
        self.interrupts.extend(resume)
        self.tasks.extend(v["task_id"] for v in resume.values())

    def outcome(self, stopped: int | None = None) -> Resumption:
        if stopped is not None:
            log.warning(
                "thread %s still waits on decided tasks after %d resumes; leaving it",
                self.thread_id,
                stopped,
            )
        status: ResumptionStatus = (
            "resumed" if self.interrupts else "continued" if self.continued else "not_pending"
        )
        return Resumption(
            status, None, self.thread_id, tuple(self.interrupts), tuple(dict.fromkeys(self.tasks))
        )
