"""``interrupt_mode="batched"``: every gated call of a model turn decided before any runs.

``HumanInTheLoopMiddleware`` asks about a turn's gated calls together, in ``after_model``,
and runs none of them until all are answered. ``HandrailMiddleware`` does the same: each
call is still a Handrail task of its own (created together, so reviewers see the turn side
by side), and the turn waits (blocking: all at once; pausing: one interrupt per undecided
call, raised together) until every one is decided. A refused call is answered there with
its ``ToolMessage`` (so the agent never dispatches it); an approved or edited call's
decision is kept in the agent's private state and carried out when the call runs. A gated
call this step could not review (its tool unknown here) is reviewed when it runs, as in
``"per_call"``: nothing runs without a recorded decision.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any, NotRequired

from langchain.agents.middleware.types import AgentState, PrivateStateAttr
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.config import get_config
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolRuntime
from langgraph.runtime import Runtime

from handrail import Decision, Task
from handrail.interrupts import PausePoint, task_key
from handrail.tool_review import ToolReview
from handrail_langgraph.interrupts import apause_all, pause_all
from handrail_langgraph.tool_calls import Ruling

if TYPE_CHECKING:
    from handrail_langgraph.tool_calls import ToolCallReviewer

__all__ = ["DECIDED", "BatchedState", "adecide_turn", "decide_turn", "decided"]

DECIDED = "handrail_decided_calls"
"""State key: tool call id to the recorded approve or modify it runs with (``decision``)
and its execution key (``execution_key``)."""


class BatchedState(AgentState[Any]):
    handrail_decided_calls: NotRequired[Annotated[dict[str, Any], PrivateStateAttr]]


def decided(request: ToolCallRequest) -> Ruling | None:
    """The decision recorded for this call in ``after_model``, if any, with its key (a
    state saved before keys were kept holds the decision alone)."""
    state = request.state
    found = state.get(DECIDED) if isinstance(state, Mapping) else None
    kept = (found or {}).get(request.tool_call.get("id") or "")
    if kept is None:
        return None
    if "decision" not in kept:
        return Ruling(Decision.model_validate(kept))
    return Ruling(Decision.model_validate(kept["decision"]), kept.get("execution_key"))


def _requests(
    state: Any, runtime: Runtime[Any], tools: Mapping[str, BaseTool]
) -> list[ToolCallRequest]:
    messages = state.get("messages") or []
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    if last is None or not last.tool_calls:
        return []
    try:
        config: Any = get_config()
    except RuntimeError:
        config = {}
    return [
        ToolCallRequest(
            tool_call=call,
            tool=tools.get(call["name"]),
            state=state,
            runtime=ToolRuntime(
                state=state,
                context=runtime.context,
                config=config,
                stream_writer=runtime.stream_writer,
                tool_call_id=call["id"],
                store=runtime.store,
                tools=list(tools.values()),
                execution_info=runtime.execution_info,
                server_info=runtime.server_info,
            ),
        )
        for call in last.tool_calls
    ]


def _reviewed(
    reviewer: ToolCallReviewer, requests: Sequence[ToolCallRequest]
) -> list[tuple[ToolCallRequest, ToolReview]]:
    pairs = [(request, reviewer.review_of(request)) for request in requests]
    return [(request, review) for request, review in pairs if review is not None]


def _points(
    reviewer: ToolCallReviewer, reviews: Sequence[ToolReview], run: Any
) -> list[PausePoint]:
    timeout = reviewer.gate.timeout
    return [
        PausePoint(
            review.spec(timeout),
            task_key(run.thread_id, run.checkpoint_ns, review.identity, 0),
            review.description,
            review.tool_call_id,
        )
        for review in reviews
    ]


def _update(
    reviewer: ToolCallReviewer,
    pairs: Sequence[tuple[ToolCallRequest, ToolReview]],
    outcomes: Sequence[Ruling | BaseException],
) -> dict[str, Any]:
    """Refused calls answered now; approved and edited ones kept for when they run."""
    answers: list[ToolMessage] = []
    keep: dict[str, Any] = {}
    for (request, review), outcome in zip(pairs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            answers.append(reviewer._failure(review, outcome))
            continue
        verdict = reviewer._verdict(request, review, outcome.decision)
        if isinstance(verdict, ToolMessage):
            answers.append(verdict)
        else:
            assert review.tool_call_id is not None
            keep[review.tool_call_id] = {
                "decision": outcome.decision.model_dump(mode="json"),
                "execution_key": outcome.execution_key,
            }
    return {"messages": answers, DECIDED: keep}


def _task_outcome(reviewer: ToolCallReviewer, task: Task) -> Ruling | BaseException:
    try:
        return reviewer.gate.ruling(task)
    except Exception as exc:
        return exc


def decide_turn(
    reviewer: ToolCallReviewer,
    state: AgentState[Any],
    runtime: Runtime[Any],
    tools: Mapping[str, BaseTool],
) -> dict[str, Any] | None:
    """``after_model`` of the batched mode: the turn's gated calls, all decided."""
    pairs = _reviewed(reviewer, _requests(state, runtime, tools))
    if not pairs:
        return {DECIDED: {}} if state.get(DECIDED) else None
    reviews = [review for _, review in pairs]
    run = reviewer.gate.durable_run()
    outcomes: list[Ruling | BaseException]
    if run is not None:
        tasks = pause_all(reviewer.client, _points(reviewer, reviews, run), run=run)
        outcomes = [_task_outcome(reviewer, task) for task in tasks]
    else:
        outcomes = _block_all(reviewer, reviews)
    return _update(reviewer, pairs, outcomes)


async def adecide_turn(
    reviewer: ToolCallReviewer,
    state: AgentState[Any],
    runtime: Runtime[Any],
    tools: Mapping[str, BaseTool],
) -> dict[str, Any] | None:
    """:func:`decide_turn` for async agents."""
    pairs = _reviewed(reviewer, _requests(state, runtime, tools))
    if not pairs:
        return {DECIDED: {}} if state.get(DECIDED) else None
    reviews = [review for _, review in pairs]
    run = reviewer.gate.durable_run()
    outcomes: list[Ruling | BaseException]
    if run is not None:
        tasks = await apause_all(reviewer.client, _points(reviewer, reviews, run), run=run)
        outcomes = [_task_outcome(reviewer, task) for task in tasks]
    else:
        found = await asyncio.gather(
            *(reviewer.gate.arule(review) for review in reviews), return_exceptions=True
        )
        outcomes = list(found)
    return _update(reviewer, pairs, outcomes)


def _block_all(
    reviewer: ToolCallReviewer, reviews: Sequence[ToolReview]
) -> list[Ruling | BaseException]:
    """Wait for every review at once (each in its own thread, in this graph task's context,
    so each task's key is the one the call would use)."""

    def one(review: ToolReview) -> Ruling | BaseException:
        try:
            return reviewer.gate.rule(review)
        except (
            BaseException
        ) as exc:  # handed to the adapter's failure path, which re-raises what it must
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(reviews))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, r) for r in reviews]
        return [f.result() for f in futures]
