"""Durable human review for CrewAI Flows: pause at ``@human_feedback``, resume on a decision.

``HandrailFeedbackProvider`` posts the method's output as a Handrail review task and raises
``HumanFeedbackPending``: CrewAI saves the flow's state and the pending context with the
flow's persistence, and ``kickoff()`` returns. Nothing waits in memory; the process may
exit. ``resume_flow`` (or ``aresume_flow``) later loads the flow with
``Flow.from_pending``, waits for the decision and resumes the flow with it.

Routing without a model: with ``emit``, CrewAI turns non-empty feedback into an outcome by
asking an LLM. A reviewer's decision already says which outcome it is, so the provider
records a decision → outcome map in the pending context (and allows only the decisions
that map to an outcome), and ``resume_flow`` hands CrewAI a stand-in "LLM" that answers
with the outcome of the decision it got. No model is called, and CrewAI still checks the
outcome is one of ``emit``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from crewai.flow.async_feedback import HumanFeedbackPending, PendingFeedbackContext
from crewai.llms.base_llm import BaseLLM
from pydantic import BaseModel

from handrail import Decision, DecisionType, Handrail, Task
from handrail.client import decision_of

from ._errors import ReviewNotGiven
from ._pending import KeepPending
from ._ruling import human_decided

if TYPE_CHECKING:
    from crewai.agents.agent_builder.base_agent import BaseAgent
    from crewai.flow.persistence.base import FlowPersistence
    from crewai.flow.runtime import Flow
    from crewai.task import Task as CrewTask
    from crewai.tools.base_tool import BaseTool
    from crewai.utilities.types import LLMMessage

__all__ = [
    "METADATA_KEY",
    "DecidedOutcome",
    "HandrailFeedbackProvider",
    "aresume_flow",
    "execution_key",
    "resume_flow",
    "review_task_id",
]

METADATA_KEY = "handrail"
"""Where the provider keeps the task id and outcome map in the pending context's metadata
(and where ``resume_flow`` puts the decision, for listeners to read from
``self.last_human_feedback.metadata``)."""

_WORDS: dict[str, tuple[str, ...]] = {
    "approve": ("approve", "approved"),
    "reject": ("reject", "rejected"),
    "respond": ("respond", "responded"),
}
_DECISIONS = tuple(t.value for t in DecisionType)


def outcome_map(emit: Sequence[str], outcomes: Mapping[str, str] | None) -> dict[str, str]:
    """Which ``emit`` outcome each decision leads to.

    Given ``outcomes``, they are checked; otherwise outcomes named after a decision
    (``approved``/``approve``, ``rejected``/``reject``, ``responded``/``respond``, any
    case) are taken, and modify leads where approve does.
    """
    if outcomes is not None:
        unknown = sorted(set(outcomes) - set(_DECISIONS))
        if unknown:
            raise ValueError(f"outcomes maps unknown decisions {unknown}; use {list(_DECISIONS)}")
        stray = sorted({label for label in outcomes.values() if label not in emit})
        if stray:
            raise ValueError(f"outcomes {stray} are not among emit={list(emit)}")
        if not outcomes:
            raise ValueError("outcomes must map at least one decision")
        return dict(outcomes)
    mapped: dict[str, str] = {}
    for decision, words in _WORDS.items():
        for label in emit:
            if label.strip().lower() in words:
                mapped[decision] = label
                break
    if "approve" not in mapped or "reject" not in mapped:
        raise ValueError(
            f"cannot tell which of emit={list(emit)} a reviewer's approve and reject lead "
            "to; pass outcomes={'approve': ..., 'reject': ...} to HandrailFeedbackProvider"
        )
    mapped.setdefault("modify", mapped["approve"])
    return mapped


def _jsonable(value: Any) -> Any:
    return PendingFeedbackContext._make_json_safe(value)


def _output_schema(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, dict):
        return {"type": "object"}
    if isinstance(value, list):
        return {"type": "array"}
    return {}


class HandrailFeedbackProvider:
    """A ``@human_feedback(provider=...)`` that pauses the flow until a reviewer decides.

    ``outcomes`` maps decisions (approve, reject, modify, respond) to the method's ``emit``
    outcomes; by default outcomes named ``approved``/``rejected`` (or ``approve``/...)
    are used, and modify goes where approve does. Reviewers may choose only the decisions
    that lead somewhere (``allowed_decisions`` narrows them further; without ``emit``,
    approve, reject, modify and respond are allowed and the decision is only recorded).
    A modify replaces the reviewed output (``self.last_human_feedback.output``). Other
    keywords (``instructions``, ``risk_tier``, ``sla_seconds``, ...) go into the task.

    The flow needs persistence (``Flow(persistence=...)``, or CrewAI's default SQLite
    file) so that it can be resumed by another process.
    """

    def __init__(
        self,
        client: Handrail,
        *,
        outcomes: Mapping[str, str] | None = None,
        allowed_decisions: Sequence[str] | None = None,
        **task_fields: Any,
    ) -> None:
        self.client = client
        self.outcomes = dict(outcomes) if outcomes is not None else None
        self.allowed_decisions = tuple(allowed_decisions) if allowed_decisions else None
        self.task_fields = dict(task_fields)

    def request_feedback(self, context: PendingFeedbackContext, flow: Flow[Any]) -> str:
        mapped = outcome_map(context.emit, self.outcomes) if context.emit else None
        allowed = list(mapped) if mapped is not None else list(_DECISIONS)
        if self.allowed_decisions is not None:
            allowed = [d for d in allowed if d in self.allowed_decisions]
        if not allowed:
            raise ValueError("no decision is both allowed and mapped to an outcome")
        output = _jsonable(context.method_output)
        routes = "; ".join(f"{d} → {o}" for d, o in mapped.items()) if mapped else ""
        payload = {
            "flow": context.flow_class,
            "flow_id": context.flow_id,
            "method": context.method_name,
            **({"routes": routes} if routes else {}),
            **self.task_fields.get("payload", {}),
        }
        fields = {**self.task_fields, "payload": payload}
        fields.setdefault("title", context.message[:500] or f"Review {context.method_name}")
        # One task per review of this flow: a flow killed before its pause was saved,
        # kicked off again with the same id, finds the task it made (and its decision).
        rounds = len(getattr(flow, "human_feedback_history", ()) or ())
        fields.setdefault(
            "idempotency_key", f"crewai-flow:{context.flow_id}:{context.method_name}:{rounds}"
        )
        fields["metadata"] = {
            **fields.get("metadata", {}),
            "crewai": {
                "flow_id": context.flow_id,
                "flow_class": f"{type(flow).__module__}:{type(flow).__qualname__}",
                "method": context.method_name,
            },
        }
        task = self.client.tasks.create(
            kind="review",
            action={
                "name": context.method_name,
                "args": {"output": output},
                "args_schema": {
                    "type": "object",
                    "properties": {"output": _output_schema(output)},
                    "required": ["output"],
                },
            },
            allowed_decisions=allowed,
            **fields,
        )
        context.metadata = {
            **context.metadata,
            METADATA_KEY: {"task_id": task.id, "outcomes": mapped},
        }
        raise HumanFeedbackPending(context, callback_info={"handrail_task_id": task.id})


def review_task_id(pending: HumanFeedbackPending | PendingFeedbackContext) -> str:
    """The id of the Handrail task a paused flow waits for."""
    context = pending.context if isinstance(pending, HumanFeedbackPending) else pending
    info = context.metadata.get(METADATA_KEY)
    if not isinstance(info, dict) or not isinstance(info.get("task_id"), str):
        raise ValueError(
            f"flow {context.flow_id} is not waiting for a Handrail review "
            f"(at {context.method_name!r}: no {METADATA_KEY!r} metadata)"
        )
    task_id: str = info["task_id"]
    return task_id


class DecidedOutcome(BaseLLM):
    """Stands in for the LLM CrewAI asks to turn feedback into an ``emit`` outcome: it
    answers with the outcome the reviewer's decision leads to, and calls no model."""

    outcome: str

    def call(
        self,
        messages: str | list[LLMMessage],
        tools: list[dict[str, BaseTool]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: CrewTask | None = None,
        from_agent: BaseAgent | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> str:
        return json.dumps({"outcome": self.outcome})

    async def acall(
        self,
        messages: str | list[LLMMessage],
        tools: list[dict[str, BaseTool]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: CrewTask | None = None,
        from_agent: BaseAgent | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> str:
        return self.call(messages)


def _prepare(flow: Flow[Any], task: Task) -> str:
    """Put the decision into the flow's pending context; return the feedback text."""
    context = flow.pending_feedback
    assert context is not None
    info = dict(context.metadata[METADATA_KEY])
    mapped: dict[str, str] | None = info.get("outcomes")
    decision = decision_of(task)
    if not human_decided(decision) and decision.type is not DecisionType.REJECT:
        decision = Decision.reject(decision.message or "no person decided")
    kind = decision.type.value
    if context.emit:
        outcome = (mapped or {}).get(kind)
        if outcome is None:
            # Only a reject made up for a review nobody answered can get here (reviewers
            # may choose mapped decisions only): with no outcome for it, stay paused.
            raise ReviewNotGiven(
                f"flow {context.flow_id} at {context.method_name!r}",
                decision.message or f"{kind} leads to no outcome",
                task.id,
            )
        # The field is typed for a serialized LLM config, but CrewAI resolves any other
        # object as an LLM instance (as it does for the decorator's own ``llm``).
        context.llm = cast(Any, DecidedOutcome(model="handrail-decision", outcome=outcome))
    if decision.type is DecisionType.MODIFY:
        assert decision.args is not None
        context.method_output = decision.args.get("output")
    info["decision"] = decision.model_dump(mode="json")
    info["execution_key"] = execution_key(task.id, decision)
    context.metadata = {**context.metadata, METADATA_KEY: info}
    # Never empty: CrewAI would take the default outcome without asking the stand-in.
    return (decision.message or "").strip() or {
        "approve": "Approved.",
        "modify": "Approved with changes.",
    }.get(kind, kind)


def execution_key(task_id: str, decision: Decision) -> str:
    """The key of the action a decision lets run: the same every time the flow resumes
    from that review (after a crash, say), different for any other review or decision.
    Make the side effect after the review idempotent with it (see docs/crewai.md)."""
    return f"handrail:{task_id}:{decision.type.value}"


def _load(
    flow_class: type[Flow[Any]],
    flow_id: str,
    persistence: FlowPersistence | None,
    kwargs: Any,
) -> tuple[Flow[Any], str, KeepPending]:
    if persistence is None:
        from crewai.flow.persistence.factory import default_flow_persistence  # noqa: PLC0415

        persistence = default_flow_persistence()
    keep = KeepPending(inner=persistence)
    flow = flow_class.from_pending(flow_id, keep, **kwargs)
    assert flow.pending_feedback is not None
    return flow, review_task_id(flow.pending_feedback), keep


def _settled(keep: KeepPending, result: Any) -> Any:
    keep.settle()
    return result


def resume_flow(
    flow_class: type[Flow[Any]],
    flow_id: str,
    *,
    client: Handrail,
    persistence: FlowPersistence | None = None,
    timeout: float | None = None,
    **flow_kwargs: Any,
) -> Any:
    """Wait for the reviewer's decision on a paused flow, then resume the flow with it.

    Loads the flow (``flow_class.from_pending(flow_id, persistence, **flow_kwargs)``),
    waits up to ``timeout`` seconds for the decision (``WaitTimeout`` after that: the flow
    stays paused and can be resumed later) and resumes it: the decision's outcome routes
    the flow (no LLM is asked), its message is the feedback text, a modify replaces the
    reviewed output, and the decision itself is in
    ``self.last_human_feedback.metadata["handrail"]["decision"]``. A review that ended with
    no decision from a person (expired, withdrawn) resumes as a reject; if reject leads to
    no outcome, ``ReviewNotGiven`` is raised and the flow stays paused. Returns what
    ``Flow.resume`` returns (the flow's result, or ``HumanFeedbackPending`` at the next
    pause). Call it outside a running event loop; use :func:`aresume_flow` inside one.
    """
    flow, task_id, keep = _load(flow_class, flow_id, persistence, flow_kwargs)
    feedback = _prepare(flow, client.tasks.wait(task_id, timeout))
    return _settled(keep, flow.resume(feedback))


async def aresume_flow(
    flow_class: type[Flow[Any]],
    flow_id: str,
    *,
    client: Handrail,
    persistence: FlowPersistence | None = None,
    timeout: float | None = None,
    **flow_kwargs: Any,
) -> Any:
    """:func:`resume_flow`, awaiting the decision and ``Flow.resume_async``."""
    flow, task_id, keep = _load(flow_class, flow_id, persistence, flow_kwargs)
    feedback = _prepare(flow, await client.tasks.await_(task_id, timeout))
    return _settled(keep, await flow.resume_async(feedback))
