"""``HandrailMiddleware``: LangChain's ``HumanInTheLoopMiddleware``, with Handrail deciding.

Same ``interrupt_on`` configuration, same decisions (approve, edit, reject, respond;
Handrail's ``modify`` is LangChain's ``edit``), but each gated tool call becomes a Handrail
review task of its own, resolved on its own: a turn with several calls cannot drop one or
miscount the decisions, and a decision comes from a reviewer Handrail allows, with an
audit trail. The per-call work is the LangGraph adapter's
:class:`~handrail_langgraph.tool_calls.ToolCallReviewer` (its ``ReviewedToolNode`` uses
the same); this module makes it an ``AgentMiddleware`` for ``create_agent``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, InterruptOnConfig
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import ToolMessage
from langgraph.types import Command

from handrail import Handrail
from handrail.client import OnTimeout
from handrail.tool_review import EDIT_NOTICE
from handrail_langgraph.tool_calls import Mode, ToolCallReviewer

__all__ = ["HandrailMiddleware"]

Result = ToolMessage | Command[Any]


class HandrailMiddleware(ToolCallReviewer, AgentMiddleware[AgentState[Any], Any, Any]):
    """Gate tool calls on human decisions recorded in Handrail; a drop-in for
    ``HumanInTheLoopMiddleware``.

    ``interrupt_on`` is ``HumanInTheLoopMiddleware``'s: tool name to ``True`` (every
    decision allowed), ``False`` (never asked) or an ``InterruptOnConfig``
    (``allowed_decisions``, a ``description`` string or function of ``(tool_call, state,
    runtime)``, a ``when`` predicate on the ``ToolCallRequest``). A tool without an entry
    runs without asking.

    Each gated call becomes one Handrail review task and runs only on a recorded
    decision: approve runs it; edit (Handrail's modify) runs it with the reviewer's
    arguments, checked against the tool's schema, and prepends ``edit_notice`` to the
    result; reject answers with an error ``ToolMessage`` that gives the reason and tells
    the model not to retry; respond answers with the reviewer's message. Calls in one
    model turn are separate tasks, decided in any order, none lost.

    ``mode="block"`` (default) waits in the tool call (no checkpointer needed; parallel
    calls wait side by side). ``mode="interrupt"`` pauses the graph with ``interrupt()``
    (create the agent with a checkpointer) and continues when the run is resumed after the
    decision (the LangGraph adapter's resumer does that); the resume value is never taken
    for the decision. ``mode="auto"`` pauses when the run has a checkpointer and blocks
    otherwise. ``timeout`` (seconds) bounds the wait: then ``on_timeout="reject"`` answers
    like a reject, ``"raise"`` raises ``WaitTimeout``. Errors while asking (an unreachable
    server) leave the call unrun and tell the model so.
    """

    def __init__(
        self,
        client: Handrail,
        interrupt_on: Mapping[str, bool | InterruptOnConfig],
        *,
        mode: Mode = "block",
        description_prefix: str = "Tool execution requires approval",
        edit_notice: str | None = EDIT_NOTICE,
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
    ) -> None:
        AgentMiddleware.__init__(self)
        ToolCallReviewer.__init__(
            self,
            client,
            interrupt_on,
            mode=mode,
            description_prefix=description_prefix,
            edit_notice=edit_notice,
            timeout=timeout,
            on_timeout=on_timeout,
        )

    # The hooks are ToolCallReviewer's, named here so that ``create_agent`` sees this
    # middleware overrides them.

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Result]
    ) -> Result:
        return ToolCallReviewer.wrap_tool_call(self, request, handler)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[Result]],
    ) -> Result:
        return await ToolCallReviewer.awrap_tool_call(self, request, handler)
