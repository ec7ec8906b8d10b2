"""Simulated reviewers for development and tests.

A :class:`SandboxReviewer` answers sandbox tasks in its organisation as they arrive, after
an optional delay: by script (answers taken in order), by rules (first match wins), by a
function of the task, or by default (approve reviews; answer judgments with a valid
example of their schema). Its decisions carry the reviewer id ``sandbox`` (or the one
given) and the tasks it answers are marked ``sandbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._examples import example_for
from .engine import Engine
from .errors import HandrailError
from .models import Decision, Kind, Principal, Role, Task
from .wake import org_channel

__all__ = ["SandboxReviewer", "SandboxRule"]

log = logging.getLogger(__name__)

Matcher = Mapping[str, Any] | Callable[[Task], bool]
Answer = Decision | Any


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


@dataclass(frozen=True)
class SandboxRule:
    """``then`` answers tasks that ``when`` matches.

    ``when`` is a predicate, or a mapping from dotted paths in the task's JSON form
    (``"action.name"``, ``"risk_tier"``, ``"payload.amount"``) to expected values; string
    values are glob patterns (``"delete_*"``).
    """

    when: Matcher
    then: Answer

    def matches(self, task: Task) -> bool:
        if callable(self.when):
            return bool(self.when(task))
        data = task.model_dump(mode="json")
        for path, expected in self.when.items():
            actual = _lookup(data, path)
            if isinstance(expected, str):
                if not (isinstance(actual, str) and fnmatch.fnmatchcase(actual, expected)):
                    return False
            elif actual != expected:
                return False
        return True


_DEFAULT = object()


class SandboxReviewer:
    def __init__(
        self,
        *rules: SandboxRule,
        script: Iterable[Answer] = (),
        decide: Callable[[Task], Answer | None] | None = None,
        default: Any = _DEFAULT,
        delay: float = 0.0,
        reviewer_id: str = "sandbox",
        only_sandbox_tasks: bool = True,
    ) -> None:
        """``default=None`` leaves tasks nothing else answered to humans."""
        self.rules = rules
        self._script = list(script)
        self._decide = decide
        self._default = default
        self.delay = delay
        self.reviewer_id = reviewer_id
        self.only_sandbox_tasks = only_sandbox_tasks

    def choose(self, task: Task) -> Answer | None:
        """The answer for ``task``, or None to leave it alone."""
        if self._script:
            return self._script.pop(0)
        for rule in self.rules:
            if rule.matches(task):
                return rule.then
        if self._decide is not None:
            return self._decide(task)
        if self._default is not _DEFAULT:
            return self._default
        if task.kind is Kind.REVIEW:
            return Decision.approve("sandbox: approved by default")
        return example_for(task.output_schema)

    async def run(self, engine: Engine, org_id: str, *, backstop: float = 5.0) -> None:
        """Answer tasks in ``org_id`` as they come, until cancelled."""
        me = Principal(
            org_id=org_id, id=self.reviewer_id, roles=frozenset({Role.REVIEWER}), sandbox=True
        )
        seen: set[str] = set()
        running: set[asyncio.Task[None]] = set()
        try:
            async with engine.waker.subscribe([org_channel(org_id)]) as sub:
                while True:
                    for task in await engine.queue(me, limit=200):
                        if task.id in seen or (self.only_sandbox_tasks and not task.sandbox):
                            continue
                        seen.add(task.id)
                        answer = self.choose(task)
                        if answer is None:
                            continue
                        job = asyncio.create_task(self._answer(engine, me, task, answer))
                        running.add(job)
                        job.add_done_callback(running.discard)
                    await sub.wait(backstop)
        finally:
            for job in running:
                job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*running, return_exceptions=True)

    async def _answer(self, engine: Engine, me: Principal, task: Task, answer: Answer) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            if task.kind is Kind.REVIEW:
                await engine.decide(me, task.id, answer)
                return
            await engine.claim(me, task.id)
        except HandrailError as exc:  # cancelled, expired or taken meanwhile: nothing to do
            log.info("sandbox reviewer skipped task %s: %s", task.id, exc)
            return
        try:
            await engine.submit(me, task.id, answer)
        except HandrailError as exc:  # the scripted answer was refused: leave it to others
            log.warning("sandbox answer for task %s refused: %s", task.id, exc)
            with contextlib.suppress(HandrailError):
                await engine.release(me, task.id, "sandbox answer refused")
