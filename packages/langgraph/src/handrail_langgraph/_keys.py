"""How an approved tool call gets its execution key: in its ``RunnableConfig``'s metadata.

A gated call runs once a reviewer approves (or modifies) it, and may run more than once
for that one decision: LangGraph runs a node again from its start when its process dies
inside it. The execution key (:func:`handrail.interrupts.execution_key`: the task id and
the decision) is the same on every such run and different for any other review or
decision, so a side effect done once per key is done once. The gated tool paths put it
into the config the tool runs with; the tool reads it with :func:`execution_key_of`, from
its ``runtime: ToolRuntime`` or a ``config: RunnableConfig`` parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.prebuilt import ToolRuntime
from langgraph.prebuilt.tool_node import ToolCallRequest

__all__ = ["EXECUTION_KEY", "execution_key_of", "keyed_config", "keyed_request"]

EXECUTION_KEY = "handrail_execution_key"
"""The metadata key of an approved call's execution key."""


def keyed_config(config: RunnableConfig, key: str | None) -> RunnableConfig:
    """``config`` with ``key`` in its metadata (unchanged for None)."""
    if key is None:
        return config
    return {**config, "metadata": {**(config.get("metadata") or {}), EXECUTION_KEY: key}}


def keyed_request(request: ToolCallRequest, key: str | None) -> ToolCallRequest:
    """``request``, its tool's runtime config carrying ``key``."""
    if key is None:
        return request
    runtime = replace(request.runtime, config=keyed_config(request.runtime.config, key))
    return replace(request, runtime=runtime)


def execution_key_of(
    source: ToolRuntime[Any, Any] | RunnableConfig | Mapping[str, Any],
) -> str | None:
    """The execution key of the approved call a tool is running for: from its
    ``ToolRuntime`` (``ReviewedToolNode``, ``HandrailMiddleware``) or its
    ``RunnableConfig`` (a ``require_approval`` tool's wrapped tool). None when the tool
    did not run on a recorded approve or modify (an ungated tool)."""
    config = source.config if isinstance(source, ToolRuntime) else source
    found = (config.get("metadata") or {}).get(EXECUTION_KEY)
    return found if isinstance(found, str) else None
