"""Turning bad input into ``ValidationError`` with JSON paths: pydantic models
(:func:`parse`), JSON Schema 2020-12 (:func:`validate_instance`, :func:`check_schema`),
and JSON paths for locations (:func:`json_path`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel

from ._jsonschema import check_schema, schema_issues, validate_instance, validation_issues
from .errors import ValidationError, ValidationIssue
from .models import Kind, TaskSpec

__all__ = [
    "check_schema",
    "json_path",
    "parse",
    "schema_issues",
    "spec_issues",
    "validate_instance",
    "validation_issues",
]

M = TypeVar("M", bound=BaseModel)


def json_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def from_pydantic(exc: pydantic.ValidationError, prefix: str = "$") -> ValidationError:
    issues = []
    for err in exc.errors(include_url=False):
        # "Value error, ..." is pydantic's wording for our own validators: drop the label
        message = str(err["msg"]).removeprefix("Value error, ")
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        issues.append(ValidationIssue(json_path(prefix, loc), message))
    return ValidationError(issues)


def parse(model: type[M], data: M | Mapping[str, Any], prefix: str = "$") -> M:
    """``data`` as ``model``, or a ``ValidationError`` naming each bad field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, prefix) from None


def spec_issues(spec: TaskSpec) -> list[ValidationIssue]:
    """What pydantic cannot see: the schemas in a task spec must be valid JSON Schema."""
    issues: list[ValidationIssue] = []
    if spec.kind is Kind.JUDGMENT:
        issues += schema_issues(spec.output_schema, "$.output_schema")
    if spec.action is not None and spec.action.args_schema is not None:
        issues += schema_issues(spec.action.args_schema, "$.action.args_schema")
    return issues
