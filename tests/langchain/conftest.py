"""LangChain adapter test kit: a scripted tool-calling chat model, tools whose side effects
are counted, and a reviewer who decides tasks from another thread as they arrive (always a
principal other than the requester)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime
from pydantic import BaseModel, Field, field_validator

from handrail import Decision, Handrail, Task
from handrail_langgraph.tool_calls import execution_key_of


class ScriptedModel(GenericFakeChatModel):
    """Answers with the scripted messages in order; tools are bound by ignoring them."""

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self


def script(*turns: AIMessage) -> ScriptedModel:
    return ScriptedModel(messages=iter(turns))


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def calls(*tool_calls: dict[str, Any]) -> AIMessage:
    """One model turn proposing these tool calls (in parallel)."""
    return AIMessage("", tool_calls=list(tool_calls))


def tool_messages(messages: Sequence[BaseMessage]) -> dict[str, ToolMessage]:
    """The ToolMessages of a conversation, by tool call id (each id answered once)."""
    found = [m for m in messages if isinstance(m, ToolMessage)]
    by_id = {m.tool_call_id: m for m in found}
    assert len(by_id) == len(found), f"a tool call was answered twice: {found}"
    return by_id


# ---------------------------------------------------------------- tools with side effects


class Ledger:
    """Counts side effects: what each tool actually did, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done: list[tuple[str, dict[str, Any]]] = []

    def note(self, name: str, **args: Any) -> None:
        with self._lock:
            self.done.append((name, args))

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [args for n, args in self.done if n == name]


class Transfer(BaseModel):
    """Money to move: positive, at most 1000 (the validator is not in the JSON schema)."""

    to: str = Field(description="who gets the money")
    amount: int = Field(description="whole euros")

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: int) -> int:
        if not 0 < value <= 1000:
            raise ValueError("the amount must be between 1 and 1000")
        return value


@dataclass
class Tools:
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        ledger = self.ledger

        @tool
        def send_email(to: str, body: str) -> str:
            """Send an email to someone."""
            ledger.note("send_email", to=to, body=body)
            return f"sent to {to}"

        @tool
        async def delete_file(path: str) -> str:
            """Delete a file for good."""
            ledger.note("delete_file", path=path)
            return f"deleted {path}"

        @tool(args_schema=Transfer)
        def transfer(to: str, amount: int) -> str:
            """Move money to someone."""
            ledger.note("transfer", to=to, amount=amount)
            return f"paid {amount} to {to}"

        @tool
        def lookup(query: str) -> str:
            """Look something up (harmless)."""
            ledger.note("lookup", query=query)
            return f"found {query}"

        self.send_email: BaseTool = send_email
        self.delete_file: BaseTool = delete_file
        self.transfer: BaseTool = transfer
        self.lookup: BaseTool = lookup


class Crash(Exception):
    """The tool's process dying after its side effect: LangGraph runs the node again."""


@dataclass
class Payments:
    """A payment tool made idempotent with its execution key, as the docs show: every run
    notes the key it got, the payment is made once per key, and the first run dies
    (:class:`Crash`) after paying, so that LangGraph runs the call again."""

    keys: list[str | None] = field(default_factory=list)
    paid: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _pay(self, key: str | None, **args: Any) -> str:
        self.keys.append(key)
        if key is not None:
            self.paid.setdefault(key, args)  # once per key
        if len(self.keys) == 1:
            raise Crash("killed after paying")
        return f"paid {args['amount']} to {args['to']}"

    def through_runtime(self) -> BaseTool:
        """``pay``, reading its key from its ``ToolRuntime``."""

        @tool
        def pay(to: str, amount: int, runtime: ToolRuntime) -> str:
            """Pay someone."""
            return self._pay(execution_key_of(runtime), to=to, amount=amount)

        return pay

    def through_config(self) -> BaseTool:
        """``pay``, reading its key from its ``RunnableConfig``."""

        @tool
        def pay(to: str, amount: int, config: RunnableConfig) -> str:
            """Pay someone."""
            return self._pay(execution_key_of(config), to=to, amount=amount)

        return pay


@pytest.fixture
def tools() -> Tools:
    return Tools()


@pytest.fixture
def hr() -> Iterator[Handrail]:
    with Handrail.local() as client:
        yield client


# ---------------------------------------------------------------- a reviewer


Policy = Mapping[str, Decision | Any] | Callable[[Task], Decision | Any | None]


class Reviewer:
    """A human at the keyboard, in a thread of its own: decides (or answers) tasks as they
    reach its queue. ``policy`` maps a task's tool call id to the decision (a judgment's
    answer), or is a function of the task; ``None`` leaves the task alone. With ``order``
    (tool call ids), it waits until all of those are queued and decides them in that order.
    Tasks already queued when it starts are not its business."""

    def __init__(
        self,
        client: Handrail,
        policy: Policy,
        *,
        order: Sequence[str] = (),
        timeout: float = 20.0,
    ) -> None:
        self.client = client
        self.policy = policy
        self.order = list(order)
        self.timeout = timeout
        self.decided: list[str] = []  # task ids, in the order decided
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._skip: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="reviewer", daemon=True)

    def __enter__(self) -> Reviewer:
        self._skip = {t.id for t in self.client.tasks.queue(limit=500)}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.failures:
            raise self.failures[0]

    def _choice(self, task: Task) -> Any:
        if callable(self.policy):
            return self.policy(task)
        return self.policy.get(str(task.metadata.get("tool_call_id")))

    def _act(self, task: Task, choice: Any) -> None:
        if isinstance(choice, Decision):
            self.client.tasks.decide(task.id, choice)
        else:
            self.client.tasks.claim(task.id)
            self.client.tasks.submit(task.id, choice)
        self.decided.append(task.id)

    def _run(self) -> None:
        waiting: dict[str, Task] = {}
        try:
            while not self._stop.is_set():
                found = self.client.tasks.wait_for_work(timeout=0.2, skip=sorted(self._skip))
                for task in found:
                    self._skip.add(task.id)
                    choice = self._choice(task)
                    if choice is None:
                        continue
                    if self.order:
                        waiting[str(task.metadata.get("tool_call_id"))] = task
                    else:
                        self._act(task, choice)
                if self.order and all(i in waiting for i in self.order):
                    for call_id in self.order:
                        self._act(waiting[call_id], self._choice(waiting[call_id]))
                    self.order = []
        except BaseException as exc:
            self.failures.append(exc)
