"""A tool's arguments as a reviewer sees them, and checking the arguments a reviewer edits.

The model sees a tool through ``tool.tool_call_schema``: the arguments it may fill in,
without those LangChain injects (the tool call id, the graph state, the runtime). The
reviewer sees the same: :func:`visible_args` keeps only those, as JSON, and
:func:`args_json_schema` gives their JSON Schema so Handrail refuses a malformed edit when
the reviewer makes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from langchain_core.tools import BaseTool
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

__all__ = ["args_json_schema", "edit_problem", "merge_edit", "visible_args", "visible_fields"]


def _model(schema: Any) -> type[BaseModel] | None:
    return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None


def args_json_schema(tool: BaseTool) -> dict[str, Any] | None:
    """The JSON Schema of the arguments the model fills in, or None if there is none."""
    try:
        schema = tool.tool_call_schema
        if isinstance(schema, dict):
            return {k: v for k, v in schema.items() if k != "description"}
        model = _model(schema)
        if model is None:
            return None
        found = model.model_json_schema()
    except Exception:  # a type pydantic cannot describe: the tool's own check still runs
        return None
    found.pop("description", None)  # the tool's description, not the arguments'
    return found


def visible_fields(tool: BaseTool) -> list[str] | None:
    """The names of the arguments the model fills in, in order; None when unknown."""
    try:
        schema = tool.tool_call_schema
    except Exception:
        return None
    if isinstance(schema, dict):
        properties = schema.get("properties")
        return list(properties) if isinstance(properties, Mapping) else None
    model = _model(schema)
    return list(model.model_fields) if model is not None else None


def _json(value: Any) -> Any:
    return to_jsonable_python(value, fallback=str)


def visible_args(tool: BaseTool, tool_input: str | Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of one call as the model gave them, as JSON, injected ones left out."""
    fields = visible_fields(tool)
    if isinstance(tool_input, str):
        return {fields[0] if fields else "input": tool_input}
    return {k: _json(v) for k, v in tool_input.items() if fields is None or k in fields}


def merge_edit(
    tool: BaseTool, tool_input: str | Mapping[str, Any], edited: Mapping[str, Any]
) -> dict[str, Any]:
    """The input to run the tool with after an edit: the reviewer's arguments in place of
    the model's, with the injected ones (state, runtime, call id) kept."""
    if isinstance(tool_input, str):
        return dict(edited)
    fields = visible_fields(tool)
    kept = {k: v for k, v in tool_input.items() if fields is not None and k not in fields}
    return {**kept, **edited}


def edit_problem(
    tool: BaseTool, tool_input: Mapping[str, Any], tool_call_id: str | None
) -> str | None:
    """Why the tool would refuse ``tool_input`` (after an edit), or None if it takes it.

    Checks the arguments the model sees against the tool's own schema and validators, as
    the tool will when it runs; a missing injected argument (the graph fills those in
    later) is not counted against the edit."""
    fields = visible_fields(tool)
    model = _model(tool.tool_call_schema)
    if model is not None:
        shown = {k: v for k, v in tool_input.items() if fields is None or k in fields}
        try:
            model.model_validate(shown)
        except pydantic.ValidationError as exc:
            return _describe(exc)
    try:
        tool._parse_input(dict(tool_input), tool_call_id)
    except pydantic.ValidationError as exc:
        errors = [
            e
            for e in exc.errors(include_url=False)
            if not e["loc"] or fields is None or e["loc"][0] in fields
        ]
        if errors:
            return _describe_errors(errors)
    except (ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _describe(exc: pydantic.ValidationError) -> str:
    return _describe_errors(exc.errors(include_url=False))


def _describe_errors(errors: list[Any]) -> str:
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e["loc"]) or "arguments"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)
