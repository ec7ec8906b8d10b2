"""``approval_hook``: gate tools crew-wide with CrewAI's global tool-call hooks.

A ``before_tool_call`` hook asks a reviewer and blocks the call (returns ``False``) unless
a person approved it; a modify edits ``tool_input`` in place. An ``after_tool_call`` hook
then puts the reviewer's words in front of the agent: CrewAI's own text for a blocked call
is only "Tool execution blocked by hook".

CrewAI swallows exceptions raised by hooks and lets the call run (fail-open), so the before
hook catches every error itself and blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import pydantic
from crewai.hooks import (
    ToolCallHookContext,
    register_after_tool_call_hook,
    register_before_tool_call_hook,
    unregister_after_tool_call_hook,
    unregister_before_tool_call_hook,
)
from crewai.utilities.string_utils import sanitize_tool_name

from handrail import Handrail

from ._ruling import DEFAULT_ALLOWED, Code, Ruling, action_for, review_failed, rule

__all__ = ["ApprovalHook", "approval_hook"]


class ApprovalHook:
    """Tool calls in every crew of this process go to a Handrail reviewer first.

    ``tools`` (tool names) and ``agents`` (agent roles) narrow what is gated; ``None``
    gates every tool, or every agent (a call whose agent is unknown is gated whenever
    ``agents`` is given). Decisions are carried out as :func:`require_approval` does:
    approve runs the call, modify runs it with the edited arguments (checked by the
    tool's ``args_schema``), and reject, respond, no answer within ``timeout``, an
    invalid edit or any error block it, with the reason as the tool's result.

    The hooks are process-global: :meth:`remove` them (or use the object as a context
    manager) when done. They block the thread they run in; in ``Crew.akickoff()`` that
    is the event loop, so gate async crews with :func:`require_approval` instead.
    """

    def __init__(
        self,
        client: Handrail,
        *,
        tools: Iterable[str] | None = None,
        agents: Iterable[str] | None = None,
        timeout: float | None = None,
        allowed_decisions: Sequence[str] = DEFAULT_ALLOWED,
        **task_fields: Any,
    ) -> None:
        if not allowed_decisions:
            raise ValueError("allowed_decisions must not be empty")
        self.client = client
        self.tools = None if tools is None else frozenset(sanitize_tool_name(t) for t in tools)
        self.agents = None if agents is None else frozenset(agents)
        self.timeout = timeout
        self.allowed_decisions = tuple(allowed_decisions)
        self.task_fields = dict(task_fields)
        # One bound method each, so unregistering finds the object that was registered.
        self._before_hook = self._before
        self._after_hook = self._after
        self._rulings: dict[int, tuple[dict[str, Any], Ruling]] = {}
        self._lock = threading.Lock()
        self._installed = False

    # ------------------------------------------------------------ lifetime

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self) -> Self:
        """Register the hooks (once)."""
        if not self._installed:
            register_before_tool_call_hook(self._before_hook)
            register_after_tool_call_hook(self._after_hook)
            self._installed = True
        return self

    def remove(self) -> bool:
        """Unregister the hooks; False if they were not registered."""
        if not self._installed:
            return False
        unregister_before_tool_call_hook(self._before_hook)
        unregister_after_tool_call_hook(self._after_hook)
        self._installed = False
        with self._lock:
            self._rulings.clear()
        return True

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    # ------------------------------------------------------------ the hooks

    def gates(self, context: ToolCallHookContext) -> bool:
        """Whether this call must be reviewed."""
        if self.tools is not None and sanitize_tool_name(context.tool_name) not in self.tools:
            return False
        if self.agents is not None:
            role = getattr(context.agent, "role", None)
            return role is None or role in self.agents
        return True

    def _before(self, context: ToolCallHookContext) -> bool | None:
        try:
            if not self.gates(context):
                return None
            ruling = self._review(context)
            if ruling.runs and ruling.code is Code.MODIFIED:
                ruling = self._apply(context, ruling)
        except Exception as exc:  # CrewAI would let the call run: block it instead
            ruling = review_failed(context.tool_name, exc)
        with self._lock:
            self._rulings[id(context.tool_input)] = (context.tool_input, ruling)
        return None if ruling.runs else False

    def _after(self, context: ToolCallHookContext) -> str | None:
        with self._lock:
            entry = self._rulings.get(id(context.tool_input))
            if entry is None or entry[0] is not context.tool_input:
                return None
            del self._rulings[id(context.tool_input)]
        ruling = entry[1]
        if not ruling.runs:
            return ruling.message
        if ruling.code is Code.MODIFIED and isinstance(context.tool_result, str):
            return ruling.message + context.tool_result
        return None

    def _review(self, context: ToolCallHookContext) -> Ruling:
        schema = _schema_of(context)
        proposed: dict[str, Any] = pydantic.TypeAdapter(dict[str, Any]).dump_python(
            dict(context.tool_input), mode="json"
        )
        payload = {
            "agent": getattr(context.agent, "role", None),
            "task": getattr(context.task, "description", None),
            **self.task_fields.get("payload", {}),
        }
        fields = {**self.task_fields, "payload": {k: v for k, v in payload.items() if v}}
        decision = self.client.review(
            action_for(context.tool_name, proposed, schema),
            allowed=self.allowed_decisions,
            timeout=self.timeout,
            **fields,
        )
        return rule(context.tool_name, decision, proposed, schema)

    @staticmethod
    def _apply(context: ToolCallHookContext, ruling: Ruling) -> Ruling:
        """Edit the call's input in place (CrewAI runs the tool with that very dict)."""
        assert ruling.args is not None
        if not context.tool_input and ruling.args:
            # CrewAI's text-parsing path hands hooks a fresh dict when the call had no
            # arguments, so an edit would be lost and the call run as proposed.
            return Ruling(
                Code.INVALID_MODIFICATION,
                f"A human reviewer edited the call to `{context.tool_name}`, but edits to a "
                "call without arguments cannot be applied by the hook, so the tool did not "
                "run. Gate this tool with require_approval to allow such edits.",
                decision=ruling.decision,
            )
        context.tool_input.clear()
        context.tool_input.update(ruling.args)
        return ruling


def _schema_of(context: ToolCallHookContext) -> type[pydantic.BaseModel] | None:
    schema = getattr(context.tool, "args_schema", None)
    if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
        return schema
    return None


def approval_hook(
    client: Handrail,
    *,
    tools: Iterable[str] | None = None,
    agents: Iterable[str] | None = None,
    timeout: float | None = None,
    allowed_decisions: Sequence[str] = DEFAULT_ALLOWED,
    **task_fields: Any,
) -> ApprovalHook:
    """Register a crew-wide approval gate and return it; ``.remove()`` unregisters it.

    ``with approval_hook(hr, tools=["send_email"]): crew.kickoff()`` gates ``send_email``
    for the duration of the block. See :class:`ApprovalHook`.
    """
    return ApprovalHook(
        client,
        tools=tools,
        agents=agents,
        timeout=timeout,
        allowed_decisions=allowed_decisions,
        **task_fields,
    ).install()
