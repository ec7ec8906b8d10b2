"""What the model reads when a human stopped, answered or changed a tool call.

Every message for a call that did not run says so and tells the model not to issue the
same call again (models otherwise retry a rejected call until they run out of turns).
Messages for a call that did not run carry Handrail's facts in ``artifact`` (never sent to
the model): the task id and the decision.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langgraph.types import Command

from handrail import Decision, DecisionType

__all__ = [
    "DO_NOT_RETRY",
    "EDIT_NOTICE",
    "annotate_edit",
    "edit_notice",
    "failed",
    "invalid_edit",
    "not_run",
    "refusal",
    "tool_message",
]

DO_NOT_RETRY = (
    "Do not retry this call, or the same call with new ids: it would be stopped again. "
    "Continue without it, choose a different approach, or ask the user."
)

EDIT_NOTICE = (
    "Note: a human reviewer changed this tool call before it ran. The call in your message "
    "is the one you proposed, not the one that ran. This was intentional and authorized; "
    "do not re-issue your original call."
)


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?" else text + "."


def not_run(name: str, decision: Decision) -> str:
    """For a reject: by a reviewer (with their reason), or by no one (a timeout, an
    expired or cancelled review)."""
    reason = _sentence(decision.message)
    if decision.reviewer_id is None:  # nobody decided: Handrail said no on their behalf
        reason = reason or "it was not approved."
        return f"The call to `{name}` was not run: {reason} {DO_NOT_RETRY}"
    because = f" Reason: {reason}" if reason else ""
    return (
        f"A human reviewer rejected the call to `{name}`, so it was not run.{because} "
        f"{DO_NOT_RETRY}"
    )


def failed(name: str, error: BaseException) -> str:
    """For an error while asking (server down, bad configuration): the call did not run."""
    detail = str(error).strip().rstrip(".") or type(error).__name__
    return (
        f"The call to `{name}` was not run: no human decision could be obtained "
        f"({detail}). {DO_NOT_RETRY}"
    )


def invalid_edit(name: str, problem: str) -> str:
    """For a modify whose arguments the tool refuses: the call did not run."""
    return (
        f"The call to `{name}` was not run: a human reviewer edited its arguments, but the "
        f"tool does not accept them ({problem}). {DO_NOT_RETRY}"
    )


def edit_notice(name: str, args: dict[str, Any], note: str | None, prefix: str) -> str:
    """Prepended to the result of a call a reviewer changed: what ran instead."""
    text = f"{prefix} Executed instead: {name} with arguments {json.dumps(args, default=str)}."
    if note and note.strip():
        text += f" The reviewer's note: {_sentence(note)}"
    return text


def refusal(name: str, decision: Decision) -> tuple[str, Literal["success", "error"]]:
    """The result of a call that did not run, and its status: the reviewer's answer for a
    respond (a success: the human answered for the tool), a refusal otherwise."""
    if decision.type is DecisionType.RESPOND:
        return decision.message or "", "success"
    return not_run(name, decision), "error"


def tool_message(
    content: str,
    *,
    name: str,
    tool_call_id: str,
    status: Literal["success", "error"],
    facts: dict[str, Any] | None = None,
) -> ToolMessage:
    """A result for a call that did not run, with Handrail's facts as its artifact."""
    return ToolMessage(
        content=content,
        name=name,
        tool_call_id=tool_call_id,
        status=status,
        artifact={"handrail": facts} if facts is not None else None,
    )


def _prepend(message: ToolMessage, notice: str) -> ToolMessage:
    content: Any = message.content
    if isinstance(content, str):
        joined: Any = f"{notice}\n\nTool response:\n{content}" if content else notice
    elif content and all(isinstance(block, str) for block in content):
        joined = [f"{notice}\n\nTool response:", *content]
    else:  # content blocks: keep their shape, providers may refuse a mixed list
        joined = [{"type": "text", "text": f"{notice}\n\nTool response:"}, *content]
    return message.model_copy(update={"content": joined})


def annotate_edit(result: Any, notice: str, tool_call_id: str | None) -> Any:
    """``result`` (a ToolMessage, a Command carrying one, or plain content) with
    ``notice`` in front, so the model learns what actually ran."""
    if isinstance(result, ToolMessage):
        return _prepend(result, notice)
    if isinstance(result, Command) and isinstance(result.update, dict):
        messages = result.update.get("messages")
        if isinstance(messages, list):
            changed = [
                _prepend(m, notice)
                if isinstance(m, ToolMessage) and m.tool_call_id == tool_call_id
                else m
                for m in messages
            ]
            return replace(result, update={**result.update, "messages": changed})
        return result
    if isinstance(result, str):
        return f"{notice}\n\nTool response:\n{result}" if result else notice
    return result
