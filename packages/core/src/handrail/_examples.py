"""A small, valid example value for a JSON Schema: what a simulated reviewer answers."""

from __future__ import annotations

from typing import Any

__all__ = ["example_for"]


def example_for(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combinator in ("oneOf", "anyOf"):
        if schema.get(combinator):
            return example_for(schema[combinator][0])
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.update(part)
        return example_for(merged)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_for(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        return [example_for(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return int(low) if kind == "integer" else low
    if kind == "null":
        return None
    return "x" * max(int(schema.get("minLength", 1)), 1)
