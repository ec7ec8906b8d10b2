"""A person reviews an agent's output: the review task, and what each decision means.

Shared by the human-input provider (``Task(human_input=True)``) and the guardrail
(``Task(guardrail=...)``). The output is the action's ``output`` argument, so a reviewer
edits it with a modify; its schema lets Handrail check the edit (a string, or the JSON
Schema of the task's structured output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pydantic

from handrail import Decision, DecisionType, Handrail

from ._errors import ReviewNotGiven
from ._ruling import human_decided

__all__ = ["OUTPUT_ACTION", "OutputReview", "Verdict"]

OUTPUT_ACTION = "approve_output"


@dataclass(frozen=True)
class Verdict:
    """``accept`` the output (``output`` is the reviewer's edit, or None to keep the
    agent's), or ``revise`` it with ``feedback``."""

    kind: Literal["accept", "revise"]
    output: Any = None
    feedback: str = ""


@dataclass
class OutputReview:
    client: Handrail
    step: str
    timeout: float | None
    allowed_decisions: Sequence[str]
    task_fields: dict[str, Any]

    def _spec(self, output: Any, context: dict[str, Any]) -> dict[str, Any]:
        if isinstance(output, pydantic.BaseModel):
            value: Any = output.model_dump(mode="json")
            schema: dict[str, Any] = type(output).model_json_schema()
        else:
            value, schema = str(output), {"type": "string"}
        defs = schema.pop("$defs", None)
        args_schema: dict[str, Any] = {
            "type": "object",
            "properties": {"output": schema},
            "required": ["output"],
            "additionalProperties": False,
        }
        if defs is not None:
            args_schema["$defs"] = defs
        payload = {k: v for k, v in context.items() if v not in (None, "")}
        fields = {**self.task_fields}
        fields["payload"] = {**payload, **fields.get("payload", {})}
        fields.setdefault("title", f"Review the output: {self.step}"[:500])
        return {
            "action": {
                "name": OUTPUT_ACTION,
                "args": {"output": value},
                "args_schema": args_schema,
            },
            **fields,
        }

    def _verdict(self, decision: Decision, output: Any) -> Verdict:
        if not human_decided(decision):
            raise ReviewNotGiven(self.step, decision.message or "no person decided")
        if decision.type is DecisionType.APPROVE:
            return Verdict("accept")
        if decision.type is DecisionType.MODIFY:
            assert decision.args is not None
            edited = decision.args.get("output")
            if isinstance(output, pydantic.BaseModel):
                try:
                    return Verdict("accept", type(output).model_validate(edited))
                except pydantic.ValidationError as exc:
                    raise ReviewNotGiven(
                        self.step, f"the reviewer's edit is not valid: {exc}"
                    ) from exc
            if not isinstance(edited, str):
                raise ReviewNotGiven(self.step, "the reviewer's edit is not text")
            return Verdict("accept", edited)
        if decision.type in (DecisionType.REJECT, DecisionType.RESPOND):
            return Verdict("revise", feedback=(decision.message or "").strip())
        raise ReviewNotGiven(self.step, f"unknown decision {decision.type!r}")

    def review(self, output: Any, **context: Any) -> Verdict:
        """Ask, block until a person decides, and say what to do with the output. Raises
        ``ReviewNotGiven`` when no person decided or the review could not be had."""
        spec = self._spec(output, context)
        try:
            decision = self.client.review(
                spec.pop("action"),
                allowed=self.allowed_decisions,
                timeout=self.timeout,
                **spec,
            )
        except Exception as exc:
            raise ReviewNotGiven(self.step, f"{type(exc).__name__}: {exc}") from exc
        return self._verdict(decision, output)

    async def areview(self, output: Any, **context: Any) -> Verdict:
        spec = self._spec(output, context)
        try:
            decision = await self.client.areview(
                spec.pop("action"),
                allowed=self.allowed_decisions,
                timeout=self.timeout,
                **spec,
            )
        except Exception as exc:
            raise ReviewNotGiven(self.step, f"{type(exc).__name__}: {exc}") from exc
        return self._verdict(decision, output)
