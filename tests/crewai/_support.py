"""Test helpers: a scripted CrewAI LLM, reviewers on other threads, counted tools."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from crewai.llms.base_llm import BaseLLM
from crewai.tools import BaseTool, tool
from pydantic import BaseModel, Field, field_validator

from crewai import Agent, Crew, Task
from handrail import Decision, Handrail, Kind
from handrail import Task as HandrailTask

FINAL = "Thought: I now know the final answer\nFinal Answer: {}"


def act(tool_name: str, args: str) -> str:
    """A ReAct step that calls ``tool_name`` with the JSON ``args``."""
    return f"Thought: I should use a tool\nAction: {tool_name}\nAction Input: {args}"


class ScriptedLLM(BaseLLM):
    """CrewAI's text-ReAct path, driven by a script of replies (one per call)."""

    responses: list[str] = Field(default_factory=list)
    seen: list[list[dict[str, Any]]] = Field(default_factory=list)

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        self.seen.append(copy.deepcopy(messages) if isinstance(messages, list) else messages)
        if not self.responses:
            raise AssertionError("the scripted LLM was called more often than scripted")
        return self.responses.pop(0)

    async def acall(self, *args: Any, **kwargs: Any) -> str:
        return self.call(*args, **kwargs)

    def last_observation(self) -> str:
        """The tool result the agent saw last (the text after ``Observation:``)."""
        for messages in reversed(self.seen):
            for message in reversed(messages):
                content = str(message.get("content", ""))
                if "Observation:" in content:
                    return content.rsplit("Observation:", 1)[1].strip()
        raise AssertionError("no observation in any prompt")

    def prompts_text(self) -> str:
        return "\n".join(str(m.get("content", "")) for ms in self.seen for m in ms)


class NativeLLM(BaseLLM):
    """CrewAI's native function-calling path (what tool-calling models take): replies are
    lists of OpenAI-style tool calls, or the final answer as text."""

    responses: list[Any] = Field(default_factory=list)
    seen: list[list[dict[str, Any]]] = Field(default_factory=list)

    def supports_function_calling(self) -> bool:
        return True

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> Any:
        self.seen.append(copy.deepcopy(messages))
        if not self.responses:
            raise AssertionError("the scripted LLM was called more often than scripted")
        return self.responses.pop(0)

    def tool_results(self) -> list[str]:
        """What the tools answered, as the model was shown it last."""
        return [str(m["content"]) for m in self.seen[-1] if m.get("role") == "tool"]


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> list[dict[str, Any]]:
    return [
        {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
    ]


def native_crew(tools: list[Any], responses: Iterable[Any]) -> tuple[Crew, NativeLLM]:
    llm = NativeLLM(model="native", responses=list(responses))
    agent = Agent(
        role="mailer",
        goal="do the task",
        backstory="a test agent",
        llm=llm,
        tools=tools,
        verbose=False,
        max_retry_limit=0,
    )
    task = Task(description="email the customer", expected_output="what happened", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False), llm


def crew_of(
    tools: list[Any],
    responses: Iterable[str],
    *,
    role: str = "mailer",
    task_kwargs: dict[str, Any] | None = None,
    retries: int = 0,
) -> tuple[Crew, ScriptedLLM]:
    """A one-agent, one-task crew whose agent follows ``responses`` (and runs the task again
    up to ``retries`` times after an error, as CrewAI's agents do by default twice)."""
    llm = ScriptedLLM(model="scripted", responses=list(responses))
    agent = Agent(
        role=role,
        goal="do the task",
        backstory="a test agent",
        llm=llm,
        tools=tools,
        verbose=False,
        max_retry_limit=retries,
    )
    task = Task(
        description="email the customer",
        expected_output="what happened",
        agent=agent,
        **(task_kwargs or {}),
    )
    return Crew(agents=[agent], tasks=[task], verbose=False), llm


# ---------------------------------------------------------------- counted tools


@dataclass
class Outbox:
    """What the email tools really sent: the side effect the tests count."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, **args: Any) -> str:
        with self.lock:
            self.sent.append(args)
        return f"email sent to {args['to']}"


class EmailArgs(BaseModel):
    to: str = Field(description="recipient address")
    body: str = Field(default="hello", description="text of the email")

    @field_validator("to")
    @classmethod
    def _company_only(cls, value: str) -> str:
        # JSON Schema cannot say this, so Handrail accepts such an edit and the adapter
        # must refuse it.
        if not value.endswith("@example.com"):
            raise ValueError("only @example.com addresses")
        return value


def email_tool(outbox: Outbox) -> BaseTool:
    """A ``@tool`` function."""

    @tool("send_email")
    def send_email(to: str, body: str = "hello") -> str:
        """Send an email to a customer."""
        return outbox.send(to=to, body=body)

    return send_email


class SendEmail(BaseTool):
    """A ``BaseTool`` subclass with sync and async runs and a validating schema."""

    name: str = "send_email"
    description: str = "Send an email to a customer."
    args_schema: type[BaseModel] = EmailArgs
    outbox: Outbox = Field(default_factory=Outbox, exclude=True)

    def _run(self, to: str, body: str = "hello") -> str:
        return self.outbox.send(to=to, body=body)

    async def _arun(self, to: str, body: str = "hello") -> str:
        return self.outbox.send(to=to, body=body, via="async")


# ---------------------------------------------------------------- reviewers

Answer = Decision | Any | Callable[[HandrailTask], Any]


class Reviewer:
    """A person on another thread (another principal than the agent's): takes each task
    that shows up and answers it from ``answers`` in order (a ``Decision`` for reviews, a
    JSON value for questions, or a function of the task). Tasks past the script are left
    alone. ``tasks`` keeps what was seen. A failed answer is reported when the block ends
    (the task is rejected meanwhile, so nobody waits for it forever)."""

    def __init__(self, client: Handrail, answers: Iterable[Answer], *, owns: bool = False) -> None:
        self.client = client
        self.owns = owns  # close the client when done
        self.answers = list(answers)
        self.tasks: list[HandrailTask] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)

    def __enter__(self) -> Reviewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.owns:
            self.client.close()
        if self.errors:
            raise self.errors[0]

    def _work(self) -> None:
        seen: set[str] = set()
        try:
            while not self._stop.is_set():
                fresh = [
                    t for t in self.client.tasks.wait_for_work(timeout=0.1) if t.id not in seen
                ]
                if not fresh or not self.answers:
                    self._stop.wait(0.01)  # only tasks past the script are queued
                    continue
                for task in fresh:
                    if not self.answers:
                        break
                    seen.add(task.id)
                    self.tasks.append(task)
                    self._answer(task, self.answers.pop(0))
        except BaseException as exc:
            self.errors.append(exc)

    def _answer(self, task: HandrailTask, answer: Answer) -> None:
        try:
            if callable(answer) and not isinstance(answer, Decision):
                answer = answer(task)
            if task.kind is Kind.REVIEW:
                self.client.tasks.decide(task.id, answer)
            else:
                self.client.tasks.claim(task.id)
                self.client.tasks.submit(task.id, answer)
        except Exception as exc:
            # Reported when the block ends; meanwhile end the task so nobody waits forever.
            self.errors.append(exc)
            if task.kind is Kind.REVIEW:
                self.client.tasks.decide(task.id, Decision.reject(f"reviewer failed: {exc}"))
            else:
                self.client.tasks.release(task.id, "reviewer failed")


def reviewer(hr: Handrail, *answers: Answer, name: str = "alice") -> Reviewer:
    """A reviewer on ``hr``'s engine (in-process), deciding as ``name``."""
    return Reviewer(hr.as_reviewer(name), answers)
