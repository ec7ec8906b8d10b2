"""Tools that know which call they are serving: its raw input and its tool call id.

``BaseTool`` hands ``_run`` the validated arguments only. Handrail's tools need the call's
id (the task's idempotency key, the id of the ToolMessage that answers it) and its input
as given (what the reviewer sees; the injected arguments kept aside). :class:`CallAwareTool`
notes both in ``run``/``arun``, which every entry point goes through, and ``_run`` reads
them back with :meth:`CallAwareTool.current_call`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.errors import is_invalid_resume

from handrail_langgraph.tool_calls import must_propagate

__all__ = ["Call", "CallAwareTool"]


@dataclass(frozen=True)
class Call:
    """One call of a tool: the input it was given and its tool call id (None when the
    tool was called with plain arguments rather than a ``ToolCall``)."""

    tool: BaseTool
    tool_input: str | dict[str, Any]
    tool_call_id: str | None


_CURRENT: ContextVar[Call | None] = ContextVar("handrail_langchain_call", default=None)


class _Carrier(Exception):
    """Carries an exception past ``BaseTool.run``'s handlers, which would turn a refused
    resume value (a ``pydantic.ValidationError``) into a tool result and so lose the
    interrupt, to :meth:`CallAwareTool.run`, which raises it again."""

    def __init__(self, inner: BaseException) -> None:
        super().__init__(str(inner))
        self.inner = inner


class CallAwareTool(BaseTool):
    """A ``BaseTool`` whose ``_run``/``_arun`` can see the call they serve."""

    def run(self, tool_input: str | dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        token = _CURRENT.set(Call(self, tool_input, kwargs.get("tool_call_id")))
        try:
            return super().run(tool_input, *args, **kwargs)
        except _Carrier as carried:
            raise carried.inner from None
        finally:
            _CURRENT.reset(token)

    async def arun(self, tool_input: str | dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        token = _CURRENT.set(Call(self, tool_input, kwargs.get("tool_call_id")))
        try:
            return await super().arun(tool_input, *args, **kwargs)
        except _Carrier as carried:
            raise carried.inner from None
        finally:
            _CURRENT.reset(token)

    def current_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """The call ``_run`` serves; ``args`` and ``kwargs`` are ``_run``'s own, used when
        ``_run`` was called directly."""
        call = _CURRENT.get()
        if call is not None and call.tool is self:
            return call
        tool_input: str | dict[str, Any] = args[0] if args else dict(kwargs)
        return Call(self, tool_input, None)

    @staticmethod
    def reraise_control(exc: BaseException) -> None:
        """Raise ``exc`` again if it must not become a tool result (see ``must_propagate``);
        a refused resume value is carried past ``BaseTool.run``."""
        if is_invalid_resume(exc):
            raise _Carrier(exc) from exc
        if must_propagate(exc):
            raise exc
