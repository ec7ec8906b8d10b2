"""A reviewer at the terminal: ``handrail review`` shows open tasks and takes decisions."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import IO, Any

from .client import Handrail
from .errors import HandrailError, ValidationError
from .models import Decision, DecisionType, Kind, Task

__all__ = ["TerminalReviewer"]

_KEYS = {
    DecisionType.APPROVE: ("a", "approve"),
    DecisionType.REJECT: ("r", "reject"),
    DecisionType.MODIFY: ("m", "modify"),
    DecisionType.RESPOND: ("p", "respond"),
}


class _Quit(Exception):
    pass


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class TerminalReviewer:
    """Decides tasks from a text terminal (any pair of text streams, for tests)."""

    def __init__(
        self,
        client: Handrail,
        *,
        stdin: IO[str],
        stdout: IO[str],
        stop: threading.Event | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.client = client
        self._in = stdin
        self._out = stdout
        self._stop = stop or threading.Event()
        self._idle_timeout = idle_timeout
        self._skipped: set[str] = set()
        self.decided = 0

    def say(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def ask(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        line = self._in.readline()
        if not line:
            raise _Quit
        return line.strip()

    def run(self) -> int:
        """Review until ``q``, end of input, the stop event, or ``idle_timeout`` without work.

        Returns how many tasks were decided or answered.
        """
        said_waiting = False
        idle = 0.0
        try:
            while not self._stop.is_set():
                work = self.client.tasks.wait_for_work(timeout=0.25, skip=self._skipped)
                if not work:
                    idle += 0.25
                    if self._idle_timeout is not None and idle >= self._idle_timeout:
                        break
                    if not said_waiting:
                        self.say("Waiting for tasks... (Ctrl-C to stop)")
                        said_waiting = True
                    continue
                idle, said_waiting = 0.0, False
                self.review(work[0])
        except _Quit:
            pass
        return self.decided

    def review(self, task: Task) -> None:
        self.show(task)
        try:
            if task.kind is Kind.REVIEW:
                self._decide(task)
            else:
                self._answer(task)
        except HandrailError as exc:  # taken, cancelled or expired meanwhile
            self.say(f"Could not record it: {exc}")
            self._skipped.add(task.id)

    def show(self, task: Task) -> None:
        self.say()
        self.say(f"== {task.title}  [{task.kind.value} · {task.task_type} · risk {task.risk_tier}]")
        self.say(f"   id {task.id}, due {task.expires_at:%Y-%m-%d %H:%M:%S} UTC")
        if task.instructions:
            self.say(f"   {task.instructions}")
        if task.payload:
            self.say("   context: " + _pretty(task.payload).replace("\n", "\n   "))
        if task.action is not None:
            self.say(f"   action: {task.action.name}")
            self.say("   args: " + _pretty(task.action.args).replace("\n", "\n   "))
        if task.agent_reasoning:
            self.say(f"   agent's reasoning: {task.agent_reasoning}")
        if task.confidence is not None:
            self.say(f"   agent's confidence: {task.confidence:.0%}")

    def _decide(self, task: Task) -> None:
        options = [_KEYS[d] for d in task.allowed_decisions]
        menu = " ".join(f"[{k}]{name[1:] if name[0] == k else ' ' + name}" for k, name in options)
        while True:
            choice = self.ask(f"{menu} [s]kip [q]uit > ").lower()
            if choice in ("q", "quit"):
                raise _Quit
            if choice in ("s", "skip"):
                self._skipped.add(task.id)
                return
            picked = next((d for d in task.allowed_decisions if choice in _KEYS[d]), None)
            if picked is None:
                self.say("Please choose one of the options.")
                continue
            decision = self._build(task, picked)
            if decision is None:
                continue
            try:
                self.client.tasks.decide(task.id, decision)
            except ValidationError as exc:
                self.say(f"Not accepted: {exc}")
                continue
            self.decided += 1
            self.say(f"Recorded: {picked.value}.")
            return

    def _build(self, task: Task, picked: DecisionType) -> Decision | None:
        if picked is DecisionType.APPROVE:
            return Decision.approve()
        if picked is DecisionType.MODIFY:
            args = self._json("edited args as JSON> ", lambda v: isinstance(v, dict))
            note = self.ask("note for the agent (optional)> ") or None
            return Decision.modify(args, note)
        label = "reason" if picked is DecisionType.REJECT else "message"
        text = self.ask(f"{label}> ")
        if not text:
            self.say(f"A {label} is required.")
            return None
        return Decision.reject(text) if picked is DecisionType.REJECT else Decision.respond(text)

    def _json(self, prompt: str, ok: Callable[[Any], bool] = lambda v: True) -> Any:
        while True:
            raw = self.ask(prompt)
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                self.say(f"Not JSON: {exc.msg} at column {exc.colno}.")
                continue
            if not ok(value):
                self.say("Please enter a JSON object.")
                continue
            return value

    def _answer(self, task: Task) -> None:
        self.say("   answer schema: " + _pretty(task.output_schema).replace("\n", "\n   "))
        first = self.ask("answer as JSON, [s]kip or [q]uit > ")
        if first.lower() in ("q", "quit"):
            raise _Quit
        if first.lower() in ("s", "skip"):
            self._skipped.add(task.id)
            return
        self.client.tasks.claim(task.id)
        try:
            self._submit_until_accepted(task, first)
        except _Quit:
            self.client.tasks.release(task.id, "the reviewer quit")
            raise

    def _submit_until_accepted(self, task: Task, raw: str) -> None:
        while True:
            try:
                self.client.tasks.submit(task.id, json.loads(raw))
            except json.JSONDecodeError as exc:
                self.say(f"Not JSON: {exc.msg} at column {exc.colno}.")
            except ValidationError as exc:
                self.say(f"Not accepted: {exc}")
            else:
                self.decided += 1
                self.say("Recorded.")
                return
            raw = self.ask("answer as JSON> ")
