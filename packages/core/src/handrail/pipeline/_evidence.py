"""What a verification stage sees, and the ``Stage`` protocol."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import JsonValue

from ..models import Assignment, Decision, Kind, StageResult, Task
from ..workers import WorkerStats

__all__ = ["Evidence", "Stage", "categorical", "label_of"]


def categorical(schema: JsonValue) -> bool:
    """Whether answers to ``schema`` fall in a few categories (enums, booleans, consts, and
    objects made only of those): only then do answer distributions mean anything."""
    if not isinstance(schema, dict):
        return False
    if "enum" in schema or "const" in schema or schema.get("type") == "boolean":
        return True
    props = schema.get("properties")
    if schema.get("type") == "object" and isinstance(props, dict) and props:
        return all(categorical(p) for p in props.values())
    return False


def label_of(task: Task, output: JsonValue) -> str | None:
    """The category an answer falls in: a decision's type, a categorical answer's JSON;
    None for free-form answers."""
    if task.kind is Kind.REVIEW:
        return Decision.model_validate(output).type.value if output is not None else None
    if categorical(task.output_schema):
        return task.answer_key(output)
    return None


@dataclass(frozen=True)
class Evidence:
    """A submitted task, with what the engine knows about its workers and task type."""

    task: Task
    answers: Sequence[Assignment]
    candidate: JsonValue
    """The answer the pipeline proposes (the consensus, or the one answer)."""
    support: float
    """How strongly the answers back the candidate, 0..1."""
    tied: bool
    stats: Mapping[str, WorkerStats]
    """Each answering worker's record on this task type."""
    crowd: WorkerStats
    """Everyone's record on this task type."""
    now: datetime
    rng: random.Random

    def seconds_on(self, answer: Assignment) -> float | None:
        if answer.submitted_at is None:
            return None
        return (answer.submitted_at - answer.claimed_at).total_seconds()


class Stage(Protocol):
    """One check. ``run`` returns a verdict (pass, fail, uncertain), a score (0..100) and
    the reasons, in words a reviewer can act on."""

    name: str

    def run(self, evidence: Evidence) -> StageResult: ...
