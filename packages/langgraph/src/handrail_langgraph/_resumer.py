"""``HandrailResumer``: carry each paused thread on, once, when its decision lands.

**What a resume is.** A thread paused by a Handrail pause (a review node, a reviewed tool
node, a gated tool, the LangChain middleware in interrupt mode) has pending interrupts
whose values name Handrail tasks. Resuming it means: read the thread's pending
interrupts (``get_state``), keep those whose task is terminal, and run the graph with
``Command(resume={interrupt_id: {"task_id": ...}})``. The paused code then reads the
decision from Handrail; the resume value only tells it to look.

**Exactly once.** A thread is resumed under its lock (:mod:`._locks`), and only for
interrupts that are still pending in the checkpointer at that moment. A successful resume
leaves no pending interrupt for a decided task: the paused code either finishes (its
writes are saved) or pauses again, and it never pauses again for a task that is already
decided. So a second resume for the same decision (an event delivered twice, a webhook
retried, a restart that replays events, the stream and a webhook both) finds nothing
pending and does nothing. A decision whose thread has no interrupt pending for it is
still delivered (``_delivery``): a pause not checkpointed yet is waited for (a decision
that came first), a thread whose process died before checkpointing its pause or in the
middle of a resume is continued with ``invoke(None)``. What it cannot undo is LangGraph's
own re-execution: a node whose process died while it ran runs again (make the side effect
idempotent with the review's ``execution_key``).

**Finding decisions.** :meth:`HandrailResumer.run` follows the organisation's event
stream from its cursor (kept in the checkpointer by default, advanced only past events
that are fully handled, so a restarted resumer goes on where it stopped). On every
(re)connect, and every ``reconcile_every`` seconds, it also reconciles: it finds the
threads whose latest checkpoint is paused on a Handrail task and resumes those whose task
is terminal, so a decision whose event never reached it (it was down without a cursor,
or a lost connection missed it) still resumes its thread. :meth:`HandrailResumer.router`
does the same from Handrail webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel

from handrail import Handrail, NotFound, Task, TaskEvent
from handrail.interrupts import paused_thread
from handrail.lifecycle import TERMINAL

from ._cursor import CheckpointCursor, Cursor
from ._delivery import Resumption, ResumptionStatus, ThreadRunner
from ._locks import PROCESS_LOCK, ThreadLock, holding
from ._scan import apaused_threads, paused_threads

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["HandrailResumer", "Resumption", "ResumptionStatus"]

log = logging.getLogger("handrail_langgraph")


class _Progress:
    """Which events are handled: the cursor may pass an event only once it and every
    event before it are done (resumes finish out of order)."""

    def __init__(self, start: int | None) -> None:
        self.seen: int | None = start  # the last event read from the stream
        self.mark: int | None = start  # every event up to here is handled
        self.saved: int | None = start  # the mark the cursor holds
        self._open: set[int] = set()
        self.changed = asyncio.Event()

    def read(self, seq: int) -> None:
        if self.mark is None:  # following from "now": everything before is not ours
            self.mark = seq - 1
        self.seen = seq
        self._open.add(seq)

    def done(self, seq: int) -> None:
        self._open.discard(seq)
        mark = min(self._open) - 1 if self._open else self.seen
        if mark is not None and (self.mark is None or mark > self.mark):
            self.mark = mark
            self.changed.set()


class HandrailResumer:
    """Resumes the threads of ``graph`` paused on Handrail tasks, once each, when the
    tasks are decided (see the module docstring for how).

    ``graph`` is a compiled graph with a durable checkpointer (``SqliteSaver``,
    ``PostgresSaver``, or their async twins); ``client`` a ``Handrail`` client of the
    organisation the tasks belong to (``Handrail(url, api_key)`` or ``Handrail.local``).

    - ``config``: the run config for a thread id (default ``{"configurable":
      {"thread_id": ...}}``), a function of it or a mapping merged in (a
      ``recursion_limit``, more ``configurable`` keys).
    - ``cursor``: where :meth:`run` keeps its place (default: a
      :class:`~handrail_langgraph.CheckpointCursor` named ``name`` in the graph's
      checkpointer).
    - ``lock``: one resume per thread at a time (default: among the resumers of this
      process; use a
      :class:`~handrail_langgraph.PostgresThreadLock` when several processes resume the
      same threads).
    - ``concurrency``: threads resumed at once by :meth:`run`.
    - ``reconcile_every``: seconds between reconciliations while :meth:`run` follows the
      stream (None: only on each (re)connect).
    - ``asynchronous``: resume with ``ainvoke`` (graphs with async nodes or an async
      checkpointer); the async methods then run on the caller's loop. Otherwise they run
      the sync graph API in worker threads.
    - ``stall_after``: seconds after a task's creation past which a thread that still
      has not checkpointed its pause on it is taken for dead (its process stopped between
      the create and the checkpoint) and continued; before that, a decision that came
      first is tried again every few milliseconds.
    - ``on_resumption``: called with each :class:`Resumption` that :meth:`run`, the
      webhook router and the ``resume_*`` methods come to, and with each thread that
      reconciling resumes (for logs and metrics).
    """

    def __init__(
        self,
        graph: Pregel[Any, Any, Any, Any],
        client: Handrail,
        *,
        config: Mapping[str, Any] | Callable[[str], RunnableConfig] | None = None,
        cursor: Cursor | None = None,
        lock: ThreadLock | None = None,
        name: str = "default",
        concurrency: int = 4,
        reconcile_every: float | None = 300.0,
        asynchronous: bool = False,
        max_rounds: int = 50,
        stall_after: float = 5.0,
        on_resumption: Callable[[Resumption], None] | None = None,
    ) -> None:
        checkpointer = graph.checkpointer
        if not isinstance(checkpointer, BaseCheckpointSaver):
            raise ValueError(
                "HandrailResumer needs a graph compiled with a checkpointer that keeps "
                "threads across restarts (SqliteSaver, PostgresSaver, ...)"
            )
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if reconcile_every is not None and not reconcile_every > 0:
            raise ValueError("reconcile_every must be a positive number of seconds, or None")
        self.graph = graph
        self.client = client
        self.checkpointer: BaseCheckpointSaver[Any] = checkpointer
        self.cursor: Cursor = cursor or CheckpointCursor(checkpointer, name)
        self.lock: ThreadLock = lock or PROCESS_LOCK
        self.concurrency = concurrency
        self.reconcile_every = reconcile_every
        self.asynchronous = asynchronous
        self.max_rounds = max_rounds
        self._runner = ThreadRunner(
            graph, client, checkpointer, max_rounds=max_rounds, stall_after=stall_after
        )
        self.on_resumption = on_resumption
        self._config = config
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None
        self._stopping = threading.Event()
        self.connected = threading.Event()
        """Set while :meth:`run` follows the stream (once its reconcile on connect is
        done), cleared when the connection goes: a readiness probe."""

    def config_for(self, thread_id: str) -> RunnableConfig:
        """The config a resume of ``thread_id`` runs with."""
        if callable(self._config):
            return self._config(thread_id)
        extra: dict[str, Any] = dict(self._config or {})
        configurable = {**dict(extra.pop("configurable", None) or {}), "thread_id": thread_id}
        return cast("RunnableConfig", {**extra, "configurable": configurable})

    def _tell(self, outcome: Resumption) -> Resumption:
        if outcome.status == "resumed":
            log.info(
                "resumed thread %s (task %s; interrupts %s)",
                outcome.thread_id,
                outcome.task_id,
                ", ".join(outcome.interrupts),
            )
        elif outcome.status == "continued":
            log.info(
                "continued thread %s, stopped in or after its pause (task %s)",
                outcome.thread_id,
                outcome.task_id,
            )
        if self.on_resumption is not None:
            try:
                self.on_resumption(outcome)
            except Exception:
                log.exception("on_resumption failed")
        return outcome

    # ------------------------------------------------------------ one task, one thread

    def resume_task(self, task_id: str) -> Resumption:
        """Resume the thread paused on ``task_id`` if the task is decided and the thread
        still waits for it (and, in the same go, its other interrupts whose tasks are
        decided). Idempotent: see :class:`Resumption` for what comes back."""
        try:
            task = self.client.tasks.get(task_id)
        except NotFound:
            return self._tell(Resumption("not_found", task_id))
        thread = paused_thread(task)
        if thread is None:
            return self._tell(Resumption("not_paused", task_id))
        if not task.terminal:
            return self._tell(Resumption("undecided", task_id, thread))
        with holding(self.lock, thread):
            outcome = self._resume_thread(thread, {task.id: task}, task)
        return self._tell(_for_task(outcome, task_id))

    async def aresume_task(self, task_id: str) -> Resumption:
        """:meth:`resume_task` for async code (in a worker thread unless
        ``asynchronous``)."""
        if not self.asynchronous:
            return await asyncio.to_thread(self.resume_task, task_id)
        try:
            task = await self.client.tasks.aget(task_id)
        except NotFound:
            return self._tell(Resumption("not_found", task_id))
        thread = paused_thread(task)
        if thread is None:
            return self._tell(Resumption("not_paused", task_id))
        if not task.terminal:
            return self._tell(Resumption("undecided", task_id, thread))
        async with self._aholding(thread):
            outcome = await self._aresume_thread(thread, {task.id: task}, task)
        return self._tell(_for_task(outcome, task_id))

    def resume_thread(self, thread_id: str) -> Resumption:
        """Answer every pending Handrail interrupt of ``thread_id`` whose task is decided."""
        with holding(self.lock, thread_id):
            return self._tell(self._resume_thread(thread_id, {}))

    async def aresume_thread(self, thread_id: str) -> Resumption:
        if not self.asynchronous:
            return await asyncio.to_thread(self.resume_thread, thread_id)
        async with self._aholding(thread_id):
            return self._tell(await self._aresume_thread(thread_id, {}))

    def _resume_thread(
        self, thread_id: str, decided: dict[str, Task], task: Task | None = None
    ) -> Resumption:
        return self._runner.resume(thread_id, self.config_for(thread_id), decided, task)

    async def _aresume_thread(
        self, thread_id: str, decided: dict[str, Task], task: Task | None = None
    ) -> Resumption:
        return await self._runner.aresume(thread_id, self.config_for(thread_id), decided, task)

    @contextlib.asynccontextmanager
    async def _aholding(self, thread_id: str) -> AsyncIterator[None]:
        """The thread's lock from async code (taken in a worker thread: it may block)."""
        taking = asyncio.ensure_future(asyncio.to_thread(self.lock.acquire, thread_id))
        try:
            await asyncio.shield(taking)
        except asyncio.CancelledError:  # it may still be taken: then let it go at once

            def let_go(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self.lock.release(thread_id)

            taking.add_done_callback(let_go)
            raise
        try:
            yield
        finally:
            await asyncio.to_thread(self.lock.release, thread_id)

    # ------------------------------------------------------------ reconciling

    def reconcile(self) -> list[Resumption]:
        """Resume every thread of the checkpointer that waits on a decided task, without
        any event. It lists every checkpoint the saver holds (see ``_scan``), so it costs
        more as the checkpointer grows. A thread that fails to resume is logged and left
        for the next time; the others go on. Returns the resumptions made."""
        resumed = []
        for thread_id in paused_threads(self.checkpointer):
            try:
                with holding(self.lock, thread_id):
                    outcome = self._resume_thread(thread_id, {})
            except Exception:
                log.exception("reconciling: resuming thread %s failed", thread_id)
                continue
            if outcome.status == "resumed":  # threads still waiting are no news
                resumed.append(self._tell(outcome))
        return resumed

    async def areconcile(self) -> list[Resumption]:
        if not self.asynchronous:
            return await asyncio.to_thread(self.reconcile)
        resumed = []
        for thread_id in await apaused_threads(self.checkpointer):
            try:
                async with self._aholding(thread_id):
                    outcome = await self._aresume_thread(thread_id, {})
            except Exception:
                log.exception("reconciling: resuming thread %s failed", thread_id)
                continue
            if outcome.status == "resumed":
                resumed.append(self._tell(outcome))
        return resumed

    # ------------------------------------------------------------ following the stream

    def run(self) -> None:
        """:meth:`arun` in this thread, until :meth:`stop` (from another thread) or an
        interrupt (Ctrl-C)."""
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self.arun())

    def stop(self) -> None:
        """Stop :meth:`run` / :meth:`arun` (from any thread): resumes in flight finish, the
        cursor is saved, then it returns."""
        self._stopping.set()
        running, self._running = self._running, None  # once: cleaning up is not cut short
        if running is not None:
            loop, task = running
            loop.call_soon_threadsafe(task.cancel)

    async def arun(self) -> None:
        """Follow the organisation's event stream and resume each thread whose task is
        decided, until :meth:`stop` (then it returns) or cancelled (then it raises
        ``CancelledError``, after the same clean-up). Connection failures are retried
        with backoff; every (re)connect reconciles first."""
        task = asyncio.current_task()
        assert task is not None
        self._stopping.clear()
        self._running = (asyncio.get_running_loop(), task)
        progress = _Progress(await asyncio.to_thread(self.cursor.load))
        slots = asyncio.Semaphore(self.concurrency)
        handling: set[asyncio.Task[None]] = set()
        helpers = [asyncio.create_task(self._keep_saving(progress))]
        if self.reconcile_every is not None:
            helpers.append(asyncio.create_task(self._reconcile_now_and_then(self.reconcile_every)))
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    await self._follow(progress, slots, handling)
                    failures = 0  # the server closed the stream: connect again, soon
                    await asyncio.sleep(random.uniform(0.05, 0.25))
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:
                    if self._stopping.is_set():
                        break
                    failures += 1
                    pause = min(30.0, 0.25 * 2**failures) * random.uniform(0.5, 1.0)
                    log.warning("event stream failed (%s); again in %.1f s", exc, pause)
                    await asyncio.sleep(pause)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise  # cancelled from elsewhere: say so, once cleaned up
            task.uncancel()  # stop() asked for it: return normally
        finally:
            for helper in helpers:
                helper.cancel()
            if handling:  # resumes in flight run in threads: let them finish
                await asyncio.gather(*handling, return_exceptions=True)
            await self._save(progress)
            self._running = None

    async def _follow(
        self, progress: _Progress, slots: asyncio.Semaphore, handling: set[asyncio.Task[None]]
    ) -> None:
        async with self.client.tasks.aevents(after=progress.seen) as events:
            await self._reconcile()  # what the stream will not bring
            self.connected.set()
            try:
                await self._read(events, progress, slots, handling)
            finally:
                self.connected.clear()

    async def _read(
        self,
        events: AsyncIterator[TaskEvent],
        progress: _Progress,
        slots: asyncio.Semaphore,
        handling: set[asyncio.Task[None]],
    ) -> None:
        async for event in events:
            if event.seq is None:
                continue
            progress.read(event.seq)
            if event.to_status not in TERMINAL:
                progress.done(event.seq)
                continue
            # the place before this decision is saved before acting on it: a resumer
            # killed while it delivers replays the decision from there
            await self._save(progress)
            await slots.acquire()
            job = asyncio.create_task(self._handle(event, progress, slots))
            handling.add(job)
            job.add_done_callback(handling.discard)

    async def _reconcile(self) -> None:
        resumed = await self.areconcile()
        if resumed:
            log.info("reconciling resumed %d thread(s)", len(resumed))

    async def _handle(
        self, event: TaskEvent, progress: _Progress, slots: asyncio.Semaphore
    ) -> None:
        assert event.seq is not None
        handled = False
        try:
            for attempt in range(1, 6):
                try:
                    await self.adeliver(event.task_id)
                    handled = True
                    return
                except Exception:
                    if self._stopping.is_set():  # left open: the cursor stays before it
                        return
                    if attempt == 5:
                        log.exception(
                            "could not resume for task %s; reconciling will try again",
                            event.task_id,
                        )
                        handled = True
                        return
                    log.warning("resuming for task %s failed; retrying", event.task_id)
                    await asyncio.sleep(0.2 * 2**attempt * random.uniform(0.5, 1.0))
        finally:
            if handled:
                progress.done(event.seq)
            slots.release()

    async def adeliver(self, task_id: str) -> Resumption:
        """:meth:`aresume_task` until the decision is delivered (the outcome is not
        ``waiting``): a decision that beat its pause to the checkpoint is tried again
        within milliseconds, and once its task is ``stall_after`` old a thread that never
        checkpointed the pause is continued. :meth:`run` and the webhook router deliver
        every decision this way."""
        pause = 0.005
        while not (outcome := await self.aresume_task(task_id)).settled:
            if self._stopping.is_set():
                raise RuntimeError(f"stopped before the thread of task {task_id} paused")
            await asyncio.sleep(pause)
            pause = min(0.05, pause * 2)
        return outcome

    async def _keep_saving(self, progress: _Progress) -> None:
        """Save the cursor whenever it moves (one write at a time, coalescing moves)."""
        while True:
            await progress.changed.wait()
            progress.changed.clear()
            await self._save(progress)

    async def _save(self, progress: _Progress) -> None:
        mark = progress.mark
        if mark is not None and mark != progress.saved:
            try:
                await asyncio.to_thread(self.cursor.save, mark)
                progress.saved = mark
            except Exception:
                log.exception("could not save the resumer's cursor (%d)", mark)

    async def _reconcile_now_and_then(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self._reconcile()
            except Exception:
                log.exception("reconciling failed; trying again in %.0f s", every)

    # ------------------------------------------------------------ webhooks

    def router(self, secret: str, *, path: str = "/handrail/webhooks") -> APIRouter:
        """A FastAPI router that resumes threads from Handrail webhooks: mount it
        (``app.include_router(resumer.router(secret))``) and register its URL for the
        ``task.verified``, ``task.expired``, ``task.cancelled`` and ``task.failed`` events;
        ``secret`` is the endpoint's signing secret (``whsec_...``). Needs the
        ``webhooks`` extra (FastAPI and ``standardwebhooks``)."""
        from ._webhooks import webhook_router  # noqa: PLC0415 - FastAPI only when asked

        return webhook_router(self, secret, path)


def _for_task(outcome: Resumption, task_id: str) -> Resumption:
    return Resumption(outcome.status, task_id, outcome.thread_id, outcome.interrupts, outcome.tasks)
