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
from typing import Any, get_args

from langchain.agents.middleware import AgentMiddleware, AgentState, InterruptOnConfig
from langchain.agents.middleware.human_in_the_loop import InterruptMode
from langchain.agents.middleware.types import ModelRequest, ModelResponse, ToolCallRequest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime
from langgraph.types import Command

from handrail import Handrail
from handrail.client import OnTimeout
from handrail.tool_review import EDIT_NOTICE
from handrail_langgraph.tool_calls import Mode, ToolCallReviewer, annotate_edit, keyed_request

from ._batched import BatchedState, adecide_turn, decide_turn, decided

__all__ = ["HandrailMiddleware"]

Result = ToolMessage | Command[Any]


class HandrailMiddleware(ToolCallReviewer, AgentMiddleware[AgentState[Any], Any, Any]):
    """Gate tool calls on human decisions recorded in Handrail; a drop-in for
    ``HumanInTheLoopMiddleware``: it takes every argument that class takes (``interrupt_on``,
    ``description_prefix``, ``edit_notice``, ``interrupt_mode``), with the same defaults,
    and Handrail's own after them.

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

    ``interrupt_mode``, as in ``HumanInTheLoopMiddleware``: ``"batched"`` (default) asks
    about all of a model turn's gated calls together, after the model, and runs none until
    every one is decided; ``"per_call"`` asks about each call as it starts.

    ``mode="auto"`` (default, as everywhere in Handrail's LangChain and LangGraph
    adapters) pauses the graph with ``interrupt()`` when the run has a checkpointer (as
    ``HumanInTheLoopMiddleware`` does; the pause survives the process) and blocks in the
    call otherwise; ``"interrupt"`` always pauses (it needs a checkpointer), ``"block"``
    always waits in the call. A paused run continues when it is resumed after the
    decision (the LangGraph adapter's resumer does that); the resume value is never taken
    for the decision. ``timeout`` (seconds) bounds the wait: then ``on_timeout="reject"``
    answers like a reject, ``"raise"`` raises ``WaitTimeout``. Errors while asking (an
    unreachable server) leave the call unrun and tell the model so.
    """

    state_schema = BatchedState

    def __init__(
        self,
        client: Handrail,
        interrupt_on: Mapping[str, bool | InterruptOnConfig],
        *,
        description_prefix: str = "Tool execution requires approval",
        edit_notice: str | None = EDIT_NOTICE,
        interrupt_mode: InterruptMode = "batched",
        mode: Mode = "auto",
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
    ) -> None:
        if interrupt_mode not in (modes := get_args(InterruptMode)):
            allowed = " or ".join(repr(m) for m in modes)
            raise ValueError(f"interrupt_mode must be {allowed}, not {interrupt_mode!r}")
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
        self.interrupt_mode: InterruptMode = interrupt_mode
        self._tools: dict[str, BaseTool] = {}

    # The hooks are named here so that ``create_agent`` sees this middleware overrides
    # them. The model call only notes the agent's tools (batched reviews show each
    # tool's schema, as per-call ones do).

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any]:
        self._note_tools(request)
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        self._note_tools(request)
        return await handler(request)

    def after_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        if self.interrupt_mode == "per_call":
            return None
        return decide_turn(self, state, runtime, self._tools)

    async def aafter_model(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        if self.interrupt_mode == "per_call":
            return None
        return await adecide_turn(self, state, runtime, self._tools)

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Result]
    ) -> Result:
        ready = self._decided(request)
        if ready is None:
            return ToolCallReviewer.wrap_tool_call(self, request, handler)
        if isinstance(ready, ToolMessage):
            return ready
        to_run, notice = ready
        result = handler(to_run)
        return result if notice is None else annotate_edit(result, notice, to_run.tool_call["id"])

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[Result]],
    ) -> Result:
        ready = self._decided(request)
        if ready is None:
            return await ToolCallReviewer.awrap_tool_call(self, request, handler)
        if isinstance(ready, ToolMessage):
            return ready
        to_run, notice = ready
        result = await handler(to_run)
        return result if notice is None else annotate_edit(result, notice, to_run.tool_call["id"])

    def _note_tools(self, request: ModelRequest[Any]) -> None:
        for tool in request.tools:
            if isinstance(tool, BaseTool):
                self._tools.setdefault(tool.name, tool)

    def _decided(
        self, request: ToolCallRequest
    ) -> ToolMessage | tuple[ToolCallRequest, str | None] | None:
        """In batched mode, the verdict on a call decided after the model; None when the
        call must be reviewed now (per-call mode, or a call the turn's review missed)."""
        if self.interrupt_mode != "batched":
            return None
        ruling = decided(request)
        review = self.review_of(request) if ruling is not None else None
        if ruling is None or review is None:
            return None
        verdict = self._verdict(request, review, ruling.decision)
        if isinstance(verdict, ToolMessage):
            return verdict
        to_run, notice = verdict
        return keyed_request(to_run, ruling.execution_key), notice
