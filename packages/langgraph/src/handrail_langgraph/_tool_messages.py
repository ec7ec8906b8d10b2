"""The ``ToolMessage`` that answers a reviewed call: built for a call that did not run, or
annotated when a reviewer changed the call (the texts are core's
:mod:`handrail.tool_review`).

Messages for a call that did not run carry Handrail's facts in ``artifact`` (never sent to
the model): the task id and the decision.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langgraph.types import Command

__all__ = ["annotate_edit", "tool_message"]


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
