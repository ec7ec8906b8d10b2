"""JSON Schema 2020-12 checks that report every problem with its JSON path.

``jsonschema`` is imported on the first check, not with ``handrail`` (it is a tenth of a
second of a cold start that most processes never need)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from .errors import ValidationError, ValidationIssue

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError as _SchemaViolation

__all__ = ["check_schema", "schema_issues", "validate_instance", "validation_issues"]


@cache
def _draft() -> type[Draft202012Validator]:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - see the module docs

    return Draft202012Validator


@cache
def _meta() -> Draft202012Validator:
    draft = _draft()
    return draft(draft.META_SCHEMA)


def _join(prefix: str, violation: _SchemaViolation) -> str:
    # violation.json_path is "$", "$.a", "$[0]" ...: graft it under the prefix
    return prefix + violation.json_path[1:]


def _issues(violations: Iterator[_SchemaViolation], prefix: str) -> list[ValidationIssue]:
    ordered = sorted(violations, key=lambda v: (list(map(str, v.absolute_path)), v.message))
    return [ValidationIssue(_join(prefix, v), v.message) for v in ordered]


def _key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1024)
def _meta_issues(schema_key: str) -> tuple[ValidationIssue, ...]:
    # Agents send the same few schemas again and again: check each one once.
    return tuple(_issues(_meta().iter_errors(json.loads(schema_key)), "$"))


def schema_issues(schema: Any, prefix: str) -> list[ValidationIssue]:
    """Problems that make ``schema`` an invalid JSON Schema 2020-12, under ``prefix``."""
    if not isinstance(schema, Mapping | bool):
        return [ValidationIssue(prefix, "a JSON Schema must be an object or a boolean")]
    return [ValidationIssue(prefix + i.path[1:], i.message) for i in _meta_issues(_key(schema))]


def check_schema(schema: Any, prefix: str) -> None:
    issues = schema_issues(schema, prefix)
    if issues:
        raise ValidationError(issues, summary="invalid JSON Schema")


@lru_cache(maxsize=512)
def _validator(schema_key: str) -> Draft202012Validator:
    return _draft()(json.loads(schema_key))


def _validator_for(schema: Any) -> Draft202012Validator:
    return _validator(_key(schema))


def validation_issues(instance: Any, schema: Any, prefix: str) -> list[ValidationIssue]:
    """Every way ``instance`` fails ``schema`` (assumed valid), with paths under ``prefix``."""
    return _issues(_validator_for(schema).iter_errors(instance), prefix)


def validate_instance(instance: Any, schema: Any, prefix: str, summary: str) -> None:
    issues = validation_issues(instance, schema, prefix)
    if issues:
        raise ValidationError(issues, summary=summary)
