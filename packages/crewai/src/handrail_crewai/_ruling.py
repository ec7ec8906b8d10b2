"""What a reviewer's decision means for one tool call, and what the agent is told.

Shared by the gated tool (``require_approval``) and the crew-wide hook
(``approval_hook``), so both carry out a decision the same way. No CrewAI here: only the
decision, the tool's name and its pydantic ``args_schema``.

A call runs only on a recorded approve or modify from a human; everything else (reject,
respond, no answer in time, an edit that does not fit the tool, an error) is a ruling that
does not run, with a message that tells the agent what happened.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pydantic
from pydantic_core import to_jsonable_python

from handrail import Decision, DecisionType
from handrail import tool_review as texts

__all__ = [
    "DEFAULT_ALLOWED",
    "Code",
    "Ruling",
    "action_for",
    "args_json_schema",
    "human_decided",
    "proposed_args",
    "review_failed",
    "rule",
]

DEFAULT_ALLOWED: tuple[str, ...] = ("approve", "reject", "modify")


class Code(StrEnum):
    """Why a call ran or did not; also the ``code`` of the ``ToolFailure`` the agent gets."""

    APPROVED = "approved"
    MODIFIED = "modified"
    REJECTED = "rejected_by_reviewer"
    RESPONDED = "answered_by_reviewer"
    NO_DECISION = "no_human_decision"
    INVALID_MODIFICATION = "invalid_modification"
    REVIEW_FAILED = "review_failed"


@dataclass(frozen=True)
class Ruling:
    """The outcome of a review for one call.

    ``runs`` is True only for an approve or a valid modify; then ``args`` are the (JSON)
    arguments it runs with, and for a modify ``kwargs`` are the edited arguments validated
    by the tool's schema (an approved call runs with its own arguments). ``message``
    is what the agent reads: why the call did not run, the reviewer's answer, or (for a
    modify) the notice that goes before the result.
    """

    code: Code
    message: str = ""
    args: dict[str, Any] | None = None
    kwargs: dict[str, Any] | None = None
    decision: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def runs(self) -> bool:
        return self.code in (Code.APPROVED, Code.MODIFIED)

    @property
    def answered(self) -> bool:
        """The reviewer answered in words instead of letting the call run."""
        return self.code is Code.RESPONDED


def human_decided(decision: Decision) -> bool:
    """Whether a person made this decision. A reject the client made up (no answer in time,
    the review expired, was cancelled or failed) carries no reviewer."""
    return decision.reviewer_id is not None


def _has_fields(schema: type[pydantic.BaseModel] | None) -> bool:
    return schema is not None and bool(schema.model_fields)


def proposed_args(
    schema: type[pydantic.BaseModel] | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments as JSON, as the reviewer will see them (validated by the
    tool's schema when it has fields, so defaults show too)."""
    if _has_fields(schema):
        assert schema is not None
        dumped: dict[str, Any] = schema.model_validate(kwargs).model_dump(mode="json")
        return dumped
    jsonable: dict[str, Any] = to_jsonable_python(kwargs)
    return jsonable


@functools.lru_cache(maxsize=256)
def args_json_schema(schema: type[pydantic.BaseModel] | None) -> dict[str, Any] | None:
    """The JSON Schema a reviewer's edited arguments must fit (None without fields).
    Made once per schema class; callers must not change it."""
    if not _has_fields(schema):
        return None
    assert schema is not None
    json_schema: dict[str, Any] = schema.model_json_schema()
    return json_schema


def action_for(
    name: str, args: dict[str, Any], schema: type[pydantic.BaseModel] | None
) -> dict[str, Any]:
    action: dict[str, Any] = {"name": name, "args": args}
    json_schema = args_json_schema(schema)
    if json_schema is not None:
        action["args_schema"] = json_schema
    return action


def _call(name: str, args: dict[str, Any]) -> str:
    return f"{name}({json.dumps(args, ensure_ascii=False, sort_keys=True)})"


def rule(
    name: str,
    decision: Decision,
    proposed: dict[str, Any],
    schema: type[pydantic.BaseModel] | None,
) -> Ruling:
    """Carry out ``decision`` on the call ``name(proposed)``."""
    dumped = decision.model_dump(mode="json")
    note = (decision.message or "").strip()
    if decision.type is DecisionType.APPROVE and human_decided(decision):
        return Ruling(Code.APPROVED, "", proposed, None, dumped)
    if decision.type is DecisionType.MODIFY and human_decided(decision):
        assert decision.args is not None  # a modify decision always carries args
        try:
            kwargs = _validated(schema, decision.args)
        except pydantic.ValidationError as exc:
            return Ruling(
                Code.INVALID_MODIFICATION, texts.invalid_edit(name, _issues(exc)), decision=dumped
            )
        ran = proposed_args(schema, kwargs) if _has_fields(schema) else dict(decision.args)
        said = f" The reviewer said: {note}" if note else ""
        notice = (
            f"Note: a human reviewer changed this call before it ran. You proposed "
            f"{_call(name, proposed)}; it ran as {_call(name, ran)}.{said}\nResult:\n"
        )
        return Ruling(Code.MODIFIED, notice, ran, kwargs, dumped)
    if decision.type is DecisionType.RESPOND and human_decided(decision):
        return Ruling(
            Code.RESPONDED,
            f"The tool `{name}` did not run: a human reviewer answered instead: {note}",
            decision=dumped,
        )
    # A person's reject, or no person decided (the wait ran out, the review expired or
    # was withdrawn), or a decision of a kind this adapter does not know: never a run. The
    # words are the ones every Handrail adapter gives the model.
    code = Code.REJECTED if human_decided(decision) else Code.NO_DECISION
    refused = decision
    if decision.type is not DecisionType.REJECT:
        refused = Decision(type=DecisionType.REJECT, message="No human approved it.")
    return Ruling(code, texts.not_run(name, refused), decision=dumped)


def review_failed(name: str, exc: BaseException) -> Ruling:
    """The review could not be had (server down, bad input, any error): the call does not
    run."""
    return Ruling(Code.REVIEW_FAILED, texts.failed(name, exc))


def _validated(schema: type[pydantic.BaseModel] | None, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` checked and converted by the tool's schema (raises pydantic's error)."""
    if not _has_fields(schema):
        return dict(args)
    assert schema is not None
    dumped: dict[str, Any] = schema.model_validate(args).model_dump()
    return dumped


def _issues(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
        for error in exc.errors()
    )
