"""``ReviewedToolNode``: LangGraph's ``ToolNode``, with the chosen tools gated on Handrail.

Each gated call is one Handrail review task, and runs only on a recorded approve or
modify; a reject (or an expired review) answers the call with an error ``ToolMessage``,
so every call of the turn gets its answer and the conversation stays valid. The per-call
work (the review a call needs, the verdict, the messages, the checking of edited
arguments) is :class:`~handrail_langgraph.tool_calls.ToolCallReviewer` (the LangChain
adapter's ``HandrailMiddleware`` is the same), plugged in as the node's ``wrap_tool_call``.

What this node adds is the order, for a graph with a checkpointer. A ``ToolNode`` runs
all the calls of a model turn in one LangGraph task, and LangGraph runs a paused task
again from its start when it is resumed: a call that ran before a sibling paused would
run again. So the node first creates the task of every gated call of the turn (reviewers
see them together) and pauses, one interrupt per undecided call, until all are decided;
only then does it run the turn, each call as its decision says. Nothing runs twice, and
nothing runs before its decision.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime

from handrail import DecisionType, Handrail
from handrail.client import OnTimeout
from handrail.interrupts import DurableRun, PausePoint, task_key
from handrail.tool_review import EDIT_NOTICE

from ._gate import Mode
from ._reviewer import ReviewConfig, ToolCallReviewer
from .interrupts import apause_all, pause_all

__all__ = ["ReviewedToolNode"]

Gated = Collection[str] | Mapping[str, ReviewConfig]


def _interrupt_on(
    gated: Gated | None, allowed: Sequence[str | DecisionType], names: Sequence[str]
) -> dict[str, ReviewConfig]:
    """``ToolCallReviewer``'s configuration for ``gated`` (tool names, or its own
    mapping; None: every tool)."""
    if isinstance(gated, str):
        raise TypeError("gated must be a collection of tool names, not one string")
    chosen = list(names) if gated is None else list(gated)
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ValueError(f"gated names tools this node lacks: {unknown}; it has {list(names)}")
    if isinstance(gated, Mapping):
        return dict(gated)
    decisions = [_LANGCHAIN.get(str(getattr(a, "value", a)), str(a)) for a in allowed]
    config: ReviewConfig = {"allowed_decisions": decisions}
    return dict.fromkeys(chosen, config)


_LANGCHAIN = {"modify": "edit"}  # LangChain's name for Handrail's modify


class ReviewedToolNode(ToolNode):
    """A ``ToolNode`` whose ``gated`` tools run only after a human decides in Handrail.

    ``gated`` names the tools to gate (default: all), or is a
    ``HumanInTheLoopMiddleware``-style mapping of tool name to ``True`` or an
    ``InterruptOnConfig`` (``allowed_decisions``, ``description``, ``when``).
    ``allowed_decisions`` applies to gated names given as a list. Other tools run at once.

    One Handrail task per gated call: approve runs it; modify runs it with the edited
    arguments (checked against the tool's schema; the result tells the model what ran);
    reject answers it with an error ``ToolMessage`` giving the reason and asking the model
    not to retry; respond answers it with the reviewer's message.

    With a checkpointer (``mode="auto"`` or ``"interrupt"``) the graph pauses: the node
    creates every gated call's task first, then raises one interrupt per undecided call,
    each with its own id (resume them with one ``Command(resume={id: ..., ...})`` map, or
    let a :class:`~handrail_langgraph.HandrailResumer` do it); the resume value only makes
    the node look again. Once every gated call of the turn is decided, the turn runs:
    nothing runs before its decision, and nothing runs twice. Without a checkpointer
    (``"auto"``, or ``"block"``) each gated call blocks until its decision, side by side.
    ``timeout`` (seconds) bounds each review: then the call is refused
    (``on_timeout="reject"``) or ``WaitTimeout`` raised (``"raise"``). Other keywords
    (``handle_tool_errors``) go to ``ToolNode``.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Any],
        *,
        client: Handrail,
        gated: Gated | None = None,
        allowed_decisions: Sequence[str | DecisionType] = ("approve", "reject", "modify"),
        mode: Mode = "auto",
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
        description_prefix: str = "Tool execution requires approval",
        edit_notice: str | None = EDIT_NOTICE,
        name: str = "tools",
        tags: list[str] | None = None,
        messages_key: str = "messages",
        **tool_node_options: Any,
    ) -> None:
        probe = ToolNode(tools)  # the tools as the node will hold them, for their names
        self.middleware = ToolCallReviewer(
            client,
            _interrupt_on(gated, allowed_decisions, list(probe.tools_by_name)),
            mode=mode,
            description_prefix=description_prefix,
            edit_notice=edit_notice,
            timeout=timeout,
            on_timeout=on_timeout,
        )
        self.client = client
        super().__init__(
            list(probe.tools_by_name.values()),
            name=name,
            tags=tags,
            messages_key=messages_key,
            **tool_node_options,
            wrap_tool_call=self.middleware.wrap_tool_call,
            awrap_tool_call=self.middleware.awrap_tool_call,
        )

    # ------------------------------------------------------------ the turn

    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        run = self.middleware.gate.durable_run()
        if run is not None and (points := self._pause_points(input, config, runtime, run)):
            pause_all(self.client, points, run=run)  # returns once every one is decided
        return super()._func(input, config, runtime)

    async def _afunc(self, input: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        run = self.middleware.gate.durable_run()
        if run is not None and (points := self._pause_points(input, config, runtime, run)):
            await apause_all(self.client, points, run=run)
        return await super()._afunc(input, config, runtime)

    def _pause_points(
        self, input: Any, config: RunnableConfig, runtime: Runtime[Any], run: DurableRun
    ) -> list[PausePoint]:
        """A pause point per gated call of the turn, keyed as the middleware keys the
        task when the call runs (its first pause for that call in this run of the task),
        so running the call finds the task decided here."""
        calls, _ = self._parse_input(input)
        state: Any = self._extract_state(input, config)
        timeout = self.middleware.gate.timeout
        points = []
        for call in calls:
            request = ToolCallRequest(
                tool_call=call,
                tool=self.tools_by_name.get(call["name"]),
                state=state,
                runtime=ToolRuntime(
                    state=state,
                    tool_call_id=call["id"],
                    config=config,
                    context=runtime.context,
                    store=runtime.store,
                    stream_writer=runtime.stream_writer,
                    tools=list(self.tools_by_name.values()),
                    execution_info=runtime.execution_info,
                    server_info=runtime.server_info,
                ),
            )
            review = self.middleware.review_of(request)
            if review is None:
                continue
            key = task_key(run.thread_id, run.checkpoint_ns, review.identity, 0)
            points.append(
                PausePoint(review.spec(timeout), key, review.description, review.tool_call_id)
            )
        return points
