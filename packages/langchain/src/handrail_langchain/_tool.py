"""``require_approval``: any LangChain tool, gated on a human decision recorded in Handrail.

The gated tool is a ``BaseTool`` with the wrapped tool's name, description and argument
schema, so the model sees the same tool. Every entry point (``invoke``, ``ainvoke``,
``run``, ``arun``, a ``ToolNode``, ``create_agent``) reaches :meth:`GatedTool._run` or
:meth:`GatedTool._arun`, which ask first and run the wrapped tool only on a recorded
approve or modify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_core.tools import tool as as_tool
from pydantic import ConfigDict, Field, PrivateAttr

from handrail import Decision, DecisionType, Handrail, WaitTimeout
from handrail import tool_review as texts
from handrail.client import OnTimeout
from handrail.interrupts import allowed_decisions as parse_decisions
from handrail.tool_review import ToolReview
from handrail_langgraph.tool_calls import (
    Gate,
    Mode,
    annotate_edit,
    args_json_schema,
    edit_problem,
    keyed_config,
    merge_edit,
    tool_message,
    visible_args,
)

from ._calls import Call, CallAwareTool

__all__ = ["GatedTool", "OnReject", "require_approval"]

log = logging.getLogger("handrail_langchain")

OnReject = Literal["message", "raise"]
Description = str | Callable[[str, dict[str, Any]], str]


class _NotRun:
    """The result of a call that does not run (a refusal, a respond, a failure)."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result


class GatedTool(CallAwareTool):
    """A tool that runs only after a human approves (or modifies) the call in Handrail.

    Made by :func:`require_approval`; see there."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool = Field(exclude=True)
    """The wrapped tool; it runs only on a recorded approve or modify."""
    client: Handrail = Field(exclude=True)
    timeout: float | None = None
    on_timeout: OnTimeout = "reject"
    on_reject: OnReject = "message"
    allowed: tuple[DecisionType, ...] = (
        DecisionType.APPROVE,
        DecisionType.REJECT,
        DecisionType.MODIFY,
    )
    review_description: Description | None = None
    """Shown to the reviewer; a function gets the tool's name and the call's arguments."""
    mode: Mode = "auto"
    edit_notice: str | None = texts.EDIT_NOTICE

    _gate: Gate = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if self.on_reject not in ("message", "raise"):
            raise ValueError(f"on_reject must be 'message' or 'raise', not {self.on_reject!r}")
        self._gate = Gate(self.client, self.timeout, self.on_timeout, self.mode)

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        if isinstance(self.inner, StructuredTool) and self.inner.func is None:
            raise NotImplementedError(f"{self.name!r} is async-only: call it with ainvoke")
        call = self.current_call(args, kwargs)
        review = self._review(call)
        try:
            ruling = self._gate.rule(review)
        except BaseException as exc:
            return self._failure(review, exc)
        decision = ruling.decision
        to_run = self._act(review, call, decision)
        if isinstance(to_run, _NotRun):
            return to_run.result
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        child = keyed_config(child, ruling.execution_key)
        result = self.inner.invoke(self._inner_input(call, to_run), child)
        return self._after(review, decision, to_run, result)

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        call = self.current_call(args, kwargs)
        review = self._review(call)
        try:
            ruling = await self._gate.arule(review)
        except BaseException as exc:
            return self._failure(review, exc)
        decision = ruling.decision
        to_run = self._act(review, call, decision)
        if isinstance(to_run, _NotRun):
            return to_run.result
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        child = keyed_config(child, ruling.execution_key)
        result = await self.inner.ainvoke(self._inner_input(call, to_run), child)
        return self._after(review, decision, to_run, result)

    # ------------------------------------------------------------ steps

    def _review(self, call: Call) -> ToolReview:
        args = visible_args(self.inner, call.tool_input)
        described = self.review_description
        description = described(self.name, args) if callable(described) else described
        return ToolReview(
            name=self.name,
            args=args,
            allowed=self.allowed,
            args_schema=args_json_schema(self.inner),
            tool_call_id=call.tool_call_id,
            description=description,
            tool_description=self.description or None,
        )

    def _failure(self, review: ToolReview, exc: BaseException) -> Any:
        """Asking failed, so the call does not run. LangGraph's control flow, cancellation
        and a timeout the caller wants raised propagate; other errors become the result."""
        self.reraise_control(exc)
        if isinstance(exc, WaitTimeout) and self.on_timeout == "raise":
            raise exc
        texts.log_failure(log, f"{review.name}: no decision", exc)
        facts = {"error": str(exc), "tool_call_id": review.tool_call_id}
        return self._not_run(review, texts.failed(review.name, exc), "error", facts).result

    def _act(self, review: ToolReview, call: Call, decision: Decision) -> Any:
        """The input to run the wrapped tool with, or a :class:`_NotRun`."""
        facts = {"decision": decision.model_dump(mode="json"), "tool_call_id": review.tool_call_id}
        if decision.type is DecisionType.APPROVE:
            return call.tool_input
        if decision.type is DecisionType.MODIFY and decision.args is not None:
            tool_input = merge_edit(self.inner, call.tool_input, decision.args)
            problem = edit_problem(self.inner, tool_input, call.tool_call_id)
            if problem is None:
                return tool_input
            log.warning("%s: the reviewer's edited arguments are invalid: %s", self.name, problem)
            return self._not_run(review, texts.invalid_edit(self.name, problem), "error", facts)
        content, status = texts.refusal(self.name, decision)
        if status == "error" and self.on_reject == "raise":
            raise ToolException(content)
        return self._not_run(review, content, status, facts)

    def _not_run(
        self,
        review: ToolReview,
        content: str,
        status: Literal["success", "error"],
        facts: dict[str, Any],
    ) -> _NotRun:
        if review.tool_call_id is None:
            return _NotRun(content)
        message = tool_message(
            content, name=self.name, tool_call_id=review.tool_call_id, status=status, facts=facts
        )
        return _NotRun(message)

    def _inner_input(self, call: Call, tool_input: str | dict[str, Any]) -> Any:
        """What the wrapped tool is invoked with: a ToolCall when the gated tool got one,
        so the wrapped tool's own result formatting (artifacts, injected call id) holds."""
        if call.tool_call_id is None:
            return tool_input
        args = tool_input if isinstance(tool_input, dict) else visible_args(self.inner, tool_input)
        return {"type": "tool_call", "name": self.inner.name, "args": args, "id": call.tool_call_id}

    def _after(self, review: ToolReview, decision: Decision, ran: Any, result: Any) -> Any:
        if decision.type is not DecisionType.MODIFY or not self.edit_notice:
            return result
        shown = visible_args(self.inner, ran)
        notice = texts.edit_notice(self.name, shown, decision.message, self.edit_notice)
        return annotate_edit(result, notice, review.tool_call_id)


def require_approval(
    tool: BaseTool | Callable[..., Any],
    *,
    client: Handrail,
    timeout: float | None = None,
    on_timeout: OnTimeout = "reject",
    on_reject: OnReject = "message",
    allowed_decisions: Sequence[str | DecisionType] = ("approve", "reject", "modify"),
    description: Description | None = None,
    mode: Mode = "auto",
    edit_notice: str | None = texts.EDIT_NOTICE,
) -> GatedTool:
    """``tool``, gated: each call waits for a human's decision in Handrail.

    ``tool`` is any LangChain tool (a ``BaseTool``, an ``@tool`` function, a
    ``StructuredTool``, sync or async) or a plain function (made a tool with ``@tool``).
    The gated tool keeps its name, description and argument schema. Each call creates a
    review task (the tool's name and the arguments the model gave; a call made with a
    ``ToolCall`` uses its id for the task's idempotency key) and waits for the decision:

    - approve: the tool runs with the original arguments;
    - modify: the edited arguments are checked against the tool's schema and
      validators, the tool runs with them, and its result starts with ``edit_notice``
      and what ran instead (invalid edited arguments: the tool does not run);
    - reject: the tool does not run; the model gets a ``ToolMessage`` with
      ``status="error"`` giving the reviewer's reason and telling it not to retry
      (``on_reject="raise"``: a ``ToolException``, handled as the tool's
      ``handle_tool_error`` says);
    - respond: the tool does not run; the reviewer's message is its result.

    On approve and modify the wrapped tool runs with the call's execution key in its
    config (``handrail_langgraph.tool_calls.execution_key_of(config)``; give the tool a
    ``config: RunnableConfig`` parameter): the same for every run of the call for that
    decision, to make its side effect idempotent.

    ``timeout`` (seconds) bounds the wait; then ``on_timeout="reject"`` answers like a
    reject, ``"raise"`` raises ``WaitTimeout``. An unreachable server or any other error
    while asking also leaves the tool unrun, and the model is told so.
    ``allowed_decisions`` limits the reviewer (``"edit"`` is taken for ``"modify"``);
    ``description`` is shown to the reviewer (a function gets the tool's name and the
    call's arguments).

    ``mode="auto"`` pauses a LangGraph run that has a checkpointer with ``interrupt()``
    rather than blocking a thread, and blocks otherwise; the task is created once, however
    often LangGraph re-runs the tool, and the run goes on once it is resumed after the
    decision. ``"block"`` always blocks; ``"interrupt"`` always pauses.
    """
    inner = tool if isinstance(tool, BaseTool) else as_tool(tool)
    schema = inner.args_schema if inner.args_schema is not None else inner.get_input_schema()
    return GatedTool(
        name=inner.name,
        description=inner.description,
        args_schema=schema,
        return_direct=inner.return_direct,
        tags=inner.tags,
        metadata=inner.metadata,
        extras=inner.extras,
        handle_tool_error=inner.handle_tool_error,
        handle_validation_error=inner.handle_validation_error,
        inner=inner,
        client=client,
        timeout=timeout,
        on_timeout=on_timeout,
        on_reject=on_reject,
        allowed=parse_decisions(allowed_decisions),
        review_description=description,
        mode=mode,
        edit_notice=edit_notice,
    )
