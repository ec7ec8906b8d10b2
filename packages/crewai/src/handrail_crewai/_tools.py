"""``require_approval``: a CrewAI tool that runs only after a person approves the call."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, Literal

from crewai.tools import BaseTool, ToolFailure, ToolFailurePolicy
from crewai.tools.base_tool import Tool
from crewai.tools.tool_failure import ToolFailureReason
from pydantic import PrivateAttr

from handrail import Decision, Handrail

from ._ruling import DEFAULT_ALLOWED, Code, Ruling, action_for, proposed_args, review_failed, rule

__all__ = ["GatedTool", "OnReject", "ReviewerAnswer", "require_approval"]

OnReject = Literal["message", "raise"]


def _never_cache(_args: Any = None, _result: Any = None) -> bool:
    """A gated call is never answered from CrewAI's tool cache: each call is reviewed."""
    return False


def _runs_async(tool: BaseTool) -> bool:
    """Whether ``tool`` has an async implementation (``arun`` on a sync ``@tool`` would
    run the function and then raise, so this is decided up front)."""
    if isinstance(tool, Tool):
        return inspect.iscoroutinefunction(tool.func)
    return type(tool)._arun is not BaseTool._arun


class GatedTool(BaseTool):
    """A tool that asks a Handrail reviewer before each call, then carries out the decision.

    Made by :func:`require_approval`; it has the wrapped tool's name, description and
    ``args_schema``, so the agent sees the same tool.
    """

    _inner: BaseTool = PrivateAttr()
    _client: Handrail = PrivateAttr()
    _timeout: float | None = PrivateAttr(default=None)
    _allowed: tuple[str, ...] = PrivateAttr(default=DEFAULT_ALLOWED)
    _fields: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        tool: BaseTool,
        *,
        client: Handrail,
        timeout: float | None = None,
        on_reject: OnReject = "message",
        allowed_decisions: Sequence[str] = DEFAULT_ALLOWED,
        description: str | None = None,
        **task_fields: Any,
    ) -> None:
        if on_reject not in ("message", "raise"):
            raise ValueError("on_reject must be 'message' or 'raise'")
        if not allowed_decisions:
            raise ValueError("allowed_decisions must not be empty")
        policy = ToolFailurePolicy.RAISE if on_reject == "raise" else tool.tool_failure_policy
        super().__init__(
            name=tool.name,
            description=tool.description,
            args_schema=tool.args_schema,
            result_schema=tool.result_schema,
            env_vars=tool.env_vars,
            result_as_answer=tool.result_as_answer,
            tool_failure_policy=policy,
            cache_function=_never_cache,
        )
        self._inner = tool
        self._client = client
        self._timeout = timeout
        self._allowed = tuple(allowed_decisions)
        self._fields = dict(task_fields)
        if description is not None:
            self._fields.setdefault("title", description)

    @property
    def inner(self) -> BaseTool:
        """The wrapped tool."""
        return self._inner

    # ------------------------------------------------------------ one call

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        call = self._proposal(args, kwargs)
        if isinstance(call, ToolFailure):
            return call
        kwargs, proposed = call
        try:
            decision = self._client.review(
                action_for(self.name, proposed, self._inner.args_schema),
                allowed=self._allowed,
                timeout=self._timeout,
                **self._fields,
            )
        except Exception as exc:  # server down, refused spec, anything: the call does not run
            return _refusal(review_failed(self.name, exc))
        ruling = self._rule(decision, proposed)
        if not ruling.runs:
            return _refused(ruling)
        try:
            result = self._inner.run(**self._kwargs(ruling, kwargs))
        except Exception as exc:
            return self._failed(exc)
        return _noted(ruling, result, self._inner)

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        call = self._proposal(args, kwargs)
        if isinstance(call, ToolFailure):
            return call
        kwargs, proposed = call
        try:
            decision = await self._client.areview(
                action_for(self.name, proposed, self._inner.args_schema),
                allowed=self._allowed,
                timeout=self._timeout,
                **self._fields,
            )
        except Exception as exc:
            return _refusal(review_failed(self.name, exc))
        ruling = self._rule(decision, proposed)
        if not ruling.runs:
            return _refused(ruling)
        run_with = self._kwargs(ruling, kwargs)
        try:
            if _runs_async(self._inner):
                result = await self._inner.arun(**run_with)
            else:
                result = await asyncio.to_thread(self._inner.run, **run_with)
        except Exception as exc:
            return self._failed(exc)
        return _noted(ruling, result, self._inner)

    # ------------------------------------------------------------ pieces

    def _proposal(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | ToolFailure:
        """The call's keyword arguments and their JSON form for the reviewer."""
        try:
            if args:
                names = list(self._inner.args_schema.model_fields)
                if len(args) > len(names):
                    raise TypeError(f"{self.name} takes at most {len(names)} arguments")
                kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
            return kwargs, proposed_args(self._inner.args_schema, kwargs)
        except Exception as exc:
            return _refusal(review_failed(self.name, exc))

    def _rule(self, decision: Decision, proposed: dict[str, Any]) -> Ruling:
        return rule(self.name, decision, proposed, self._inner.args_schema)

    @staticmethod
    def _kwargs(ruling: Ruling, proposed: dict[str, Any]) -> dict[str, Any]:
        return ruling.kwargs if ruling.kwargs is not None else proposed

    def _failed(self, exc: Exception) -> ToolFailure:
        """The approved call raised. Reported once to the agent: CrewAI would otherwise
        retry the call, and each retry would ask the reviewer again."""
        return ToolFailure(
            message=f"`{self.name}` was approved, but failed: {type(exc).__name__}: {exc}",
            reason=ToolFailureReason.EXCEPTION,
            code=type(exc).__name__,
        )


class ReviewerAnswer(str):
    """A reviewer's answer given in place of running the tool (a ``str``)."""

    __slots__ = ()


def _refusal(ruling: Ruling) -> ToolFailure:
    details = {"decision": ruling.decision} if ruling.decision is not None else {}
    return ToolFailure(
        message=ruling.message,
        code=ruling.code.value,
        retryable=ruling.code in (Code.NO_DECISION, Code.REVIEW_FAILED),
        details=details,
    )


def _refused(ruling: Ruling) -> Any:
    """What the agent gets for a call that did not run: the reviewer's answer (respond), or
    a ``ToolFailure`` saying why (CrewAI shows its message and records the failure)."""
    if ruling.answered:
        return ReviewerAnswer(ruling.message)
    return _refusal(ruling)


def _noted(ruling: Ruling, result: Any, tool: BaseTool) -> Any:
    """The result of a call that ran; after a modify, with the notice of the change first."""
    if ruling.code is not Code.MODIFIED:
        return result
    if isinstance(result, ToolFailure):
        return result.model_copy(update={"message": ruling.message + result.message})
    return ruling.message + tool.format_output_for_agent(result)


def require_approval(
    tool: BaseTool,
    *,
    client: Handrail,
    timeout: float | None = None,
    on_reject: OnReject = "message",
    allowed_decisions: Sequence[str] = DEFAULT_ALLOWED,
    description: str | None = None,
    **task_fields: Any,
) -> GatedTool:
    """``tool`` (a ``BaseTool`` subclass or an ``@tool`` function), gated by a person.

    Each call creates a Handrail review task (the action is the tool's name and arguments,
    with the tool's argument schema so edits are checked) and blocks (``run``/``_run``) or
    awaits (``arun``) the decision:

    - approve: the tool runs with the proposed arguments;
    - modify: the edited arguments are validated by the tool's ``args_schema`` and the tool
      runs with them; the result starts with a notice saying what the human changed;
    - reject: the tool does not run; the agent gets a ``ToolFailure`` with the reviewer's
      reason and a request not to retry;
    - respond: the tool does not run; the reviewer's answer is the result.

    No answer within ``timeout`` seconds (the review is then withdrawn), an edit the tool's
    schema refuses, an unreachable server or any other error: the tool does not run and
    the agent gets a ``ToolFailure`` saying why. With ``on_reject="raise"`` every such
    failure stops the run instead (CrewAI's ``ToolExecutionFailedError``, through the
    tool's ``tool_failure_policy``). ``description`` is the task's title for the reviewer;
    other keywords (``instructions``, ``payload``, ``risk_tier``, ``sla_seconds``, ...)
    go into the task.

    Gated calls are never served from CrewAI's tool cache, and the wrapped tool's
    ``max_usage_count`` counts the calls that ran.
    """
    return GatedTool(
        tool,
        client=client,
        timeout=timeout,
        on_reject=on_reject,
        allowed_decisions=allowed_decisions,
        description=description,
        **task_fields,
    )
