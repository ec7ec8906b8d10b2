"""``ToolCallReviewer``: the per-call work of gating tool calls on Handrail, as
``wrap_tool_call`` hooks.

Same configuration as LangChain's ``HumanInTheLoopMiddleware`` (``interrupt_on``), same
decisions (approve, edit, reject, respond; Handrail's ``modify`` is LangChain's ``edit``),
but each gated tool call becomes a Handrail review task of its own, resolved on its own: a
turn with several calls cannot drop one or miscount the decisions, and a decision comes
from a reviewer Handrail allows, with an audit trail. It needs only LangGraph and
LangChain Core: the reviewed tool node plugs it in as its ``wrap_tool_call``, and the
LangChain adapter's ``HandrailMiddleware`` is this, as an ``AgentMiddleware``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import get_runtime
from langgraph.types import Command

from handrail import Decision, DecisionType, Handrail, WaitTimeout
from handrail import tool_review as texts
from handrail.client import OnTimeout
from handrail.interrupts import allowed_decisions
from handrail.models import BATCH_ID
from handrail.tool_review import EDIT_NOTICE, ToolReview

from ._args import args_json_schema, edit_problem, merge_edit, visible_fields
from ._gate import Gate, Mode, must_propagate
from ._keys import keyed_request
from ._tool_messages import annotate_edit, tool_message

__all__ = ["ALL_DECISIONS", "ReviewConfig", "ToolCallReviewer", "turn_of"]

log = logging.getLogger("handrail_langgraph.tool_calls")

Result = ToolMessage | Command[Any]
ALL_DECISIONS = ("approve", "edit", "reject", "respond")

ReviewConfig = bool | Mapping[str, Any]
"""One tool's entry in ``interrupt_on``: ``True`` (every decision), ``False`` (never
asked), or LangChain's ``InterruptOnConfig`` (``allowed_decisions``, ``description``,
``when``)."""


@dataclass(frozen=True)
class _Rule:
    """One tool's entry in ``interrupt_on``, resolved."""

    allowed: tuple[DecisionType, ...]
    description: Any = None
    when: Callable[[ToolCallRequest], bool] | None = None


def _rules(interrupt_on: Mapping[str, ReviewConfig]) -> dict[str, _Rule]:
    rules: dict[str, _Rule] = {}
    for name, config in interrupt_on.items():
        if isinstance(config, bool):
            if config:
                rules[name] = _Rule(allowed_decisions(ALL_DECISIONS))
            continue
        names = config.get("allowed_decisions")
        if not names:
            raise ValueError(
                f"interrupt_on[{name!r}] needs a non-empty 'allowed_decisions' list "
                f"(e.g. ['approve', 'reject']); got keys {sorted(config)}"
            )
        rules[name] = _Rule(allowed_decisions(names), config.get("description"), config.get("when"))
    return rules


def turn_of(state: Any, call_id: str) -> str | None:
    """The batch of the model turn that made tool call ``call_id``: the id of the AI
    message carrying it (or, when the model gave it none, a digest of its calls' ids), so
    the parallel calls of one turn share it. None when the state shows no such message."""
    messages = state.get("messages", ()) if isinstance(state, Mapping) else ()
    for message in reversed(messages):
        if not isinstance(message, AIMessage):
            continue
        ids = [c.get("id") for c in message.tool_calls]
        if call_id not in ids:
            continue
        if message.id and len(message.id) <= 190 and re.fullmatch(BATCH_ID, message.id):
            return f"turn:{message.id}"
        named = message.id or "\x00".join(str(i) for i in ids)
        return f"turn:{hashlib.sha256(named.encode()).hexdigest()[:32]}"
    return None


class ToolCallReviewer:
    """Gate tool calls on human decisions recorded in Handrail, through
    ``wrap_tool_call``/``awrap_tool_call``.

    ``interrupt_on`` is ``HumanInTheLoopMiddleware``'s: tool name to ``True`` (every
    decision allowed), ``False`` (never asked) or an ``InterruptOnConfig``
    (``allowed_decisions``, a ``description`` string or function of ``(tool_call, state,
    runtime)``, a ``when`` predicate on the ``ToolCallRequest``). A tool without an entry
    runs without asking.

    Each gated call becomes one Handrail review task and runs only on a recorded
    decision: approve runs it; edit (Handrail's modify) runs it with the reviewer's
    arguments, checked against the tool's schema, and prepends ``edit_notice`` to the
    result (either way the tool's ``ToolRuntime`` config carries the call's execution
    key: :func:`~handrail_langgraph.tool_calls.execution_key_of`); reject answers with
    an error ``ToolMessage`` that gives the reason and tells the model not to retry;
    respond answers with the reviewer's message. Calls in one
    model turn are separate tasks, decided in any order, none lost. ``mode``,
    ``timeout`` and ``on_timeout`` are :class:`~handrail_langgraph.tool_calls.Gate`'s.
    Errors while asking (an unreachable server) leave the call unrun and tell the model
    so.
    """

    def __init__(
        self,
        client: Handrail,
        interrupt_on: Mapping[str, ReviewConfig],
        *,
        mode: Mode = "auto",
        description_prefix: str = "Tool execution requires approval",
        edit_notice: str | None = EDIT_NOTICE,
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
    ) -> None:
        self.client = client
        self.interrupt_on = _rules(interrupt_on)
        self.description_prefix = description_prefix
        self.edit_notice = edit_notice
        self.gate = Gate(client, timeout, on_timeout, mode)

    # ------------------------------------------------------------ hooks

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Result]
    ) -> Result:
        review = self.review_of(request)
        if review is None:
            return handler(request)
        try:
            ruling = self.gate.rule(review)
        except BaseException as exc:
            return self._failure(review, exc)
        verdict = self._verdict(request, review, ruling.decision)
        if isinstance(verdict, ToolMessage):
            return verdict
        to_run, notice = verdict
        result = handler(keyed_request(to_run, ruling.execution_key))
        return result if notice is None else annotate_edit(result, notice, review.tool_call_id)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[Result]],
    ) -> Result:
        review = self.review_of(request)
        if review is None:
            return await handler(request)
        try:
            ruling = await self.gate.arule(review)
        except BaseException as exc:
            return self._failure(review, exc)
        verdict = self._verdict(request, review, ruling.decision)
        if isinstance(verdict, ToolMessage):
            return verdict
        to_run, notice = verdict
        result = await handler(keyed_request(to_run, ruling.execution_key))
        return result if notice is None else annotate_edit(result, notice, review.tool_call_id)

    # ------------------------------------------------------------ steps

    def review_of(self, request: ToolCallRequest) -> ToolReview | None:
        """The review for a gated call, or None when this call runs without asking (or
        names no tool the agent has: then nothing can run, and the tool node says so).
        The same request always gives the same review (the LangGraph adapter's tool node
        creates the tasks of a turn's calls up front from these)."""
        call, tool = request.tool_call, request.tool
        rule = self.interrupt_on.get(call["name"])
        if rule is None or tool is None or (rule.when is not None and not rule.when(request)):
            return None
        if call.get("id") is None:
            raise ValueError(
                f"tool call {call['name']!r} has no id, so its result could not be matched "
                "to it: make sure the chat model returns tool call ids"
            )
        shown = visible_fields(tool)
        args = {k: v for k, v in call["args"].items() if shown is None or k in shown}
        return ToolReview(
            name=call["name"],
            args=args,
            allowed=rule.allowed,
            args_schema=args_json_schema(tool),
            tool_call_id=call["id"],
            description=self._description(request, rule),
            tool_description=tool.description or None,
            batch_id=turn_of(request.state, call["id"]) if call["id"] else None,
        )

    def _description(self, request: ToolCallRequest, rule: _Rule) -> str:
        call = request.tool_call
        if callable(rule.description):
            try:
                runtime: Any = get_runtime()
            except RuntimeError:  # outside a graph: the tool's runtime is all there is
                runtime = request.runtime
            return str(rule.description(call, request.state, runtime))
        if rule.description is not None:
            return str(rule.description)
        return f"{self.description_prefix}\n\nTool: {call['name']}\nArgs: {call['args']}"

    def _failure(self, review: ToolReview, exc: BaseException) -> ToolMessage:
        if must_propagate(exc):
            raise exc
        if isinstance(exc, WaitTimeout) and self.gate.on_timeout == "raise":
            raise exc
        texts.log_failure(log, f"{review.name}: no decision", exc)
        assert review.tool_call_id is not None
        return tool_message(
            texts.failed(review.name, exc),
            name=review.name,
            tool_call_id=review.tool_call_id,
            status="error",
            facts={"error": str(exc), "tool_call_id": review.tool_call_id},
        )

    def _verdict(
        self, request: ToolCallRequest, review: ToolReview, decision: Decision
    ) -> ToolMessage | tuple[ToolCallRequest, str | None]:
        """The request to run (and the notice for its result), or the message that
        answers the call instead of running it."""
        call = request.tool_call
        assert review.tool_call_id is not None
        facts = {"decision": decision.model_dump(mode="json"), "tool_call_id": review.tool_call_id}
        if decision.type is DecisionType.APPROVE:
            return request, None
        if decision.type is DecisionType.MODIFY and decision.args is not None:
            assert request.tool is not None  # calls without a tool are not reviewed
            args = merge_edit(request.tool, call["args"], decision.args)
            problem = edit_problem(request.tool, args, review.tool_call_id)
            if problem is not None:
                log.warning(
                    "%s: the reviewer's edited arguments are invalid: %s", review.name, problem
                )
                return tool_message(
                    texts.invalid_edit(review.name, problem),
                    name=review.name,
                    tool_call_id=review.tool_call_id,
                    status="error",
                    facts=facts,
                )
            notice = None
            if self.edit_notice:
                notice = texts.edit_notice(
                    review.name, dict(decision.args), decision.message, self.edit_notice
                )
            # the name stays the model's: an edit cannot switch to another tool
            return request.override(tool_call={**call, "args": args}), notice
        content, status = texts.refusal(review.name, decision)
        return tool_message(
            content,
            name=review.name,
            tool_call_id=review.tool_call_id,
            status=status,
            facts=facts,
        )
