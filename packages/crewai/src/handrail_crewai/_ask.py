"""``AskHumanTool``: a tool an agent uses to put a question or a judgment to a person."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from crewai.tools import BaseTool, ToolFailure
from pydantic import BaseModel, Field, PrivateAttr

from handrail import Handrail, NoAnswer, WaitTimeout

__all__ = ["FREE_TEXT", "AskHumanInput", "AskHumanTool"]

FREE_TEXT: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "minLength": 1}},
    "required": ["answer"],
    "additionalProperties": False,
}
"""The answer schema when none is given: one non-empty string, ``answer``."""

DESCRIPTION = (
    "Ask a human a question when you cannot answer it yourself or need a person's "
    "judgment. Put everything the human needs to know in the question and context; "
    "the human's answer comes back as the result."
)


class AskHumanInput(BaseModel):
    question: str = Field(description="The question for the human, complete in itself.")
    context: str | None = Field(
        default=None, description="What the human needs to know to answer (optional)."
    )


class AskHumanTool(BaseTool):
    """Put a question to a person through Handrail and return the verified answer.

    Without ``output_schema`` the human answers in free text and the tool returns it; with
    one, the answer is JSON valid against it and the tool returns it as a JSON string.
    ``timeout`` bounds the wait (the question is then withdrawn). No answer in time, a
    question that ended without an answer, or an unreachable server: the agent gets a
    ``ToolFailure`` saying so, never an invented answer. Other keywords (``instructions``,
    ``risk_tier``, ``sla_seconds``, ``payout``, ...) go into the task.
    """

    args_schema: type[BaseModel] = AskHumanInput
    _client: Handrail = PrivateAttr()
    _schema: dict[str, Any] | None = PrivateAttr(default=None)
    _timeout: float | None = PrivateAttr(default=None)
    _fields: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        client: Handrail,
        *,
        name: str = "ask_human",
        description: str = DESCRIPTION,
        output_schema: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **task_fields: Any,
    ) -> None:
        super().__init__(name=name, description=description)
        self._client = client
        self._schema = dict(output_schema) if output_schema is not None else None
        self._timeout = timeout
        self._fields = dict(task_fields)

    def _run(self, question: str, context: str | None = None) -> Any:
        try:
            answer = self._client.ask(question, **self._task(context))
        except Exception as exc:
            return _unanswered(exc)
        return self._result(answer)

    async def _arun(self, question: str, context: str | None = None) -> Any:
        try:
            answer = await self._client.aask(question, **self._task(context))
        except Exception as exc:
            return _unanswered(exc)
        return self._result(answer)

    def _task(self, context: str | None) -> dict[str, Any]:
        return {
            "output_schema": self._schema or FREE_TEXT,
            "payload": {"context": context} if context else {},
            "timeout": self._timeout,
            **self._fields,
        }

    def _result(self, answer: Any) -> str:
        if self._schema is None:
            return str(answer["answer"])
        return json.dumps(answer, ensure_ascii=False)


def _unanswered(exc: Exception) -> ToolFailure:
    if isinstance(exc, WaitTimeout | NoAnswer):
        why = "No human answered the question in time."
        if isinstance(exc, NoAnswer):
            why = f"The question ended without an answer ({exc.status})."
        return ToolFailure(message=f"{why} Do not assume an answer.", code=exc.code, retryable=True)
    return ToolFailure(
        message=f"The question could not be put to a human ({type(exc).__name__}: {exc}). "
        "Do not assume an answer.",
        code="ask_failed",
        retryable=True,
    )
