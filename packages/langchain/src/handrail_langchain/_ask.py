"""``ask_human_tool``: a tool the model calls to put a question or a judgment to a human.

The question becomes a Handrail judgment task; the tool returns the verified answer (free
text, or JSON that fits ``output_schema``). No answer (a timeout, an expired or failed
task, an unreachable server) is an error result telling the model not to assume one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.tools import ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from handrail import Handrail, NoAnswer, Status, Task
from handrail.tool_review import log_failure, task_fields
from handrail_langgraph.interrupts import apause, pause
from handrail_langgraph.tool_calls import Gate, Mode, call_key

from ._calls import CallAwareTool

__all__ = ["AskHumanTool", "HumanQuestion", "ask_human_tool"]

log = logging.getLogger("handrail_langchain")

FREE_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
MAX_TITLE = 500

DESCRIPTION = (
    "Ask a human and wait for the answer. Use it for a judgment you should not make alone, "
    "a decision that is the user's to take, or facts only a person knows. Ask one complete, "
    "self-contained question; put what the human needs to know in `context`."
)

NO_ANSWER = (
    "No human answered the question ({why}). Do not assume an answer and do not ask the "
    "same question again right away: continue without it, or tell the user."
)


class HumanQuestion(BaseModel):
    """The arguments of the ask-human tool."""

    question: str = Field(min_length=1, description="The question, complete in itself.")
    context: str | None = Field(
        default=None, description="What the human needs to know to answer (optional)."
    )


class AskHumanTool(CallAwareTool):
    """A tool that asks a human through Handrail. Made by :func:`ask_human_tool`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Handrail = Field(exclude=True)
    answer_schema: dict[str, Any] | None = None
    """The JSON Schema the answer must fit; None for free text."""
    timeout: float | None = None
    mode: Mode = "auto"
    args_schema: Any = HumanQuestion
    handle_tool_error: Any = True

    _gate: Gate = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._gate = Gate(self.client, self.timeout, "raise", self.mode)

    def _run(
        self,
        question: str,
        context: str | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> Any:
        call = self.current_call((), {"question": question, "context": context})
        spec = self._spec(question, context, call.tool_call_id)
        try:
            run = self._gate.durable_run()
            if run is None:
                title, schema, fields = self._asking(spec, call.tool_call_id)
                return self.client.ask(title, schema, **fields)
            task = pause(self.client, spec, identity=self._identity(call.tool_call_id), run=run)
        except BaseException as exc:
            raise self._failure(exc) from exc
        return _answer(task)

    async def _arun(
        self,
        question: str,
        context: str | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> Any:
        call = self.current_call((), {"question": question, "context": context})
        spec = self._spec(question, context, call.tool_call_id)
        try:
            run = self._gate.durable_run()
            if run is None:
                title, schema, fields = self._asking(spec, call.tool_call_id)
                return await self.client.aask(title, schema, **fields)
            identity = self._identity(call.tool_call_id)
            task = await apause(self.client, spec, identity=identity, run=run)
        except BaseException as exc:
            raise self._failure(exc) from exc
        return _answer(task)

    def _asking(
        self, spec: dict[str, Any], tool_call_id: str | None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """``spec`` as ``ask``/``aask``'s question, schema and other arguments."""
        fields = dict(spec)
        title, schema = fields.pop("title"), fields.pop("output_schema")
        fields.update(timeout=self.timeout, idempotency_key=self._key(tool_call_id))
        return title, schema, fields

    def _spec(self, question: str, context: str | None, tool_call_id: str | None) -> dict[str, Any]:
        """The judgment task; the same question gives the same spec (a paused graph
        creates it again on resume)."""
        question = question.strip()
        title = question if len(question) <= MAX_TITLE else question[: MAX_TITLE - 1] + "…"
        spec: dict[str, Any] = {
            "kind": "judgment",
            "task_type": self.name[:100],
            "title": title,
            "output_schema": self.answer_schema or FREE_TEXT,
            "payload": {"question": question, **({"context": context} if context else {})},
            "metadata": {"source": "handrail-langchain", "tool_call_id": tool_call_id},
            **task_fields(self.timeout),
        }
        if title != question:
            spec["instructions"] = question
        return spec

    def _key(self, tool_call_id: str | None) -> str | None:
        return call_key(self.name, tool_call_id)

    def _identity(self, tool_call_id: str | None) -> str:
        return f"ask:{tool_call_id or self.name}"

    def _failure(self, exc: BaseException) -> BaseException:
        """No answer: an error result for the model (cancellation, LangGraph's control
        flow and a refused resume value propagate as they are)."""
        self.reraise_control(exc)
        if isinstance(exc, TimeoutError):
            why = "no one answered in time"
        elif isinstance(exc, NoAnswer):
            why = f"the question ended {exc.status}"
        else:
            log_failure(log, f"{self.name}: no answer", exc)
            why = f"it could not be asked: {exc}"
        return ToolException(NO_ANSWER.format(why=why))


def _answer(task: Task) -> Any:
    if task.status is Status.VERIFIED:
        return task.output
    reason = task.failure_reason or task.status.value
    if task.status is Status.EXPIRED:
        reason = "no one answered in time"
    raise ToolException(NO_ANSWER.format(why=reason))


def ask_human_tool(
    client: Handrail,
    *,
    name: str = "ask_human",
    description: str = DESCRIPTION,
    output_schema: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    mode: Mode = "auto",
) -> AskHumanTool:
    """A tool the model calls to ask a human (``question``, with optional ``context``).

    It puts the question to a human as a Handrail judgment task and returns the verified
    answer: free text, or, with ``output_schema`` (a JSON Schema), JSON that fits it (the
    schema is added to the tool's description so the model knows the shape). It waits at
    most ``timeout`` seconds (None: until the task's deadline, an hour by default). No
    answer in time, a failed or cancelled task, or an unreachable server is an error result
    that tells the model not to assume an answer. ``mode`` is as for
    :func:`require_approval`: inside a LangGraph run with a checkpointer, ``"auto"`` pauses
    the graph instead of blocking.
    """
    schema = dict(output_schema) if output_schema is not None else None
    text = description
    if schema is not None:
        text += f" The answer is JSON that fits this schema: {json.dumps(schema)}"
    return AskHumanTool(
        name=name,
        description=text,
        client=client,
        answer_schema=schema,
        timeout=timeout,
        mode=mode,
    )
