"""The verification stages: schema, rules, anomaly, gold, consensus and QA spot checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._jsonschema import validation_issues
from ..expressions import Expression, compile_expression
from ..models import Decision, DecisionType, Kind, StageResult
from ..workers import mad_z
from ._evidence import Evidence, label_of

__all__ = [
    "AnomalyStage",
    "ConsensusStage",
    "GoldStage",
    "QaStage",
    "Rule",
    "RulesStage",
    "SchemaStage",
]


def _ok(name: str, score: float = 100.0, *reasons: str) -> StageResult:
    return StageResult(name=name, verdict="pass", score=score, reasons=reasons)


class SchemaStage:
    """Every answer fits: a judgment its ``output_schema``, a decision the decision shape,
    the allowed decisions and, for a modify, the action's ``args_schema``."""

    name = "schema"

    def run(self, evidence: Evidence) -> StageResult:
        task, problems = evidence.task, []
        for i, answer in enumerate(evidence.answers):
            where = f"$.answers[{i}]"
            if task.kind is Kind.JUDGMENT:
                issues = validation_issues(answer.output, task.output_schema, where)
                problems += [f"{answer.worker_id}: {issue}" for issue in issues]
                continue
            decision = Decision.model_validate(answer.output)
            if decision.type not in task.allowed_decisions:
                problems.append(f"{answer.worker_id}: {decision.type.value} is not allowed")
            schema = task.action.args_schema if task.action else None
            if decision.type is DecisionType.MODIFY and schema is not None:
                issues = validation_issues(decision.args, schema, f"{where}.args")
                problems += [f"{answer.worker_id}: {issue}" for issue in issues]
        if problems:
            return StageResult(name=self.name, verdict="fail", score=0, reasons=tuple(problems))
        return _ok(self.name)


@dataclass(frozen=True)
class Rule:
    """A check over the proposed answer: ``expression`` (see ``handrail.expressions``) must
    hold, or ``message`` says what is wrong. The context has ``output``, ``payload``,
    ``task`` (``task_type``, ``risk_tier``) and, for reviews, ``action`` and ``decision``."""

    expression: str
    message: str

    @property
    def compiled(self) -> Expression:
        return compile_expression(self.expression)


class RulesStage:
    """Declarative checks per task type (``"*"`` applies to every type). A broken rule
    fails the answer."""

    name = "rules"

    def __init__(self, rules: Mapping[str, Sequence[Rule]] | None = None) -> None:
        self.rules = {k: tuple(v) for k, v in (rules or {}).items()}
        for rule in (r for rs in self.rules.values() for r in rs):
            _ = rule.compiled  # a bad rule fails here, when configured, not mid-verification

    def run(self, evidence: Evidence) -> StageResult:
        task = evidence.task
        rules = self.rules.get(task.task_type, ()) + self.rules.get("*", ())
        if not rules:
            return _ok(self.name, 100.0, "no rules for this task type")
        context = {
            "output": evidence.candidate,
            "payload": task.payload,
            "task": {"task_type": task.task_type, "risk_tier": task.risk_tier.value},
            "action": task.action.model_dump(mode="json") if task.action else None,
            "decision": evidence.candidate if task.kind is Kind.REVIEW else None,
        }
        broken = [rule.message for rule in rules if not rule.compiled.test(context)]
        if broken:
            return StageResult(name=self.name, verdict="fail", score=0, reasons=tuple(broken))
        return _ok(self.name, 100.0, f"{len(rules)} rule(s) hold")


class AnomalyStage:
    """Answers that look wrong in how they were made: far faster than usual for the task
    type (robust z below ``z_limit`` *and* under ``fast_share`` of the median time, so a
    tight spread of times cannot flag ordinary answers; only where the usual time is at
    least ``min_usual`` seconds, a human scale), or from a worker whose answers
    drift far from the crowd's (total variation distance above ``drift_limit`` over
    ``min_labels`` answers)."""

    name = "anomaly"

    def __init__(
        self,
        *,
        z_limit: float = -3.5,
        fast_share: float = 0.25,
        min_usual: float = 1.0,
        drift_limit: float = 0.5,
        min_labels: int = 20,
    ) -> None:
        self.z_limit = z_limit
        self.fast_share = fast_share
        self.min_usual = min_usual
        self.drift_limit = drift_limit
        self.min_labels = min_labels

    def run(self, evidence: Evidence) -> StageResult:
        flags = []
        usual = evidence.crowd.median_duration
        for answer in evidence.answers:
            seconds = evidence.seconds_on(answer)
            z = mad_z(seconds, evidence.crowd.durations) if seconds is not None else None
            rushed = (
                usual is not None
                and usual >= self.min_usual
                and seconds is not None
                and seconds < usual * self.fast_share
            )
            if z is not None and z < self.z_limit and rushed:
                flags.append(
                    f"{answer.worker_id} answered in {seconds:.0f}s; the usual is {usual:.0f}s"
                )
            mine = evidence.stats.get(answer.worker_id)
            if mine is not None and label_of(evidence.task, answer.output) is not None:
                drift = _drift(mine.labels, evidence.crowd.labels, self.min_labels)
                if drift is not None and drift > self.drift_limit:
                    flags.append(
                        f"{answer.worker_id}'s answers drift from the crowd's ({drift:.2f})"
                    )
        if flags:
            return StageResult(name=self.name, verdict="uncertain", score=60, reasons=tuple(flags))
        return _ok(self.name)


def _drift(mine: Mapping[str, int], crowd: Mapping[str, int], least: int) -> float | None:
    """Total variation distance between a worker's answer distribution and everyone
    else's; None with too few answers on either side."""
    others = {k: crowd.get(k, 0) - mine.get(k, 0) for k in crowd}
    n_mine, n_others = sum(mine.values()), sum(others.values())
    if n_mine < least or n_others < least:
        return None
    keys = set(mine) | set(others)
    return 0.5 * sum(abs(mine.get(k, 0) / n_mine - others.get(k, 0) / n_others) for k in keys)


class GoldStage:
    """On a gold task (known answer): every answer must match it. On any other task: a
    worker whose gold accuracy is below ``min_accuracy`` over ``min_gold`` gold tasks makes
    the answer uncertain."""

    name = "gold"

    def __init__(self, *, min_accuracy: float = 0.6, min_gold: int = 5) -> None:
        self.min_accuracy = min_accuracy
        self.min_gold = min_gold

    def run(self, evidence: Evidence) -> StageResult:
        task = evidence.task
        if task.gold_answer is not None:
            gold = task.answer_key(task.gold_answer)
            wrong = [a.worker_id for a in evidence.answers if task.answer_key(a.output) != gold]
            if wrong:
                return StageResult(
                    name=self.name,
                    verdict="fail",
                    score=0,
                    reasons=tuple(f"{w} missed a known answer" for w in wrong),
                )
            return _ok(self.name, 100.0, "matches the known answer")
        weak = []
        for answer in evidence.answers:
            record = evidence.stats.get(answer.worker_id)
            if record is not None and record.gold_total >= self.min_gold:
                accuracy = record.gold_correct / record.gold_total
                if accuracy < self.min_accuracy:
                    weak.append(f"{answer.worker_id} is right on {accuracy:.0%} of gold tasks")
        if weak:
            return StageResult(name=self.name, verdict="uncertain", score=60, reasons=tuple(weak))
        return _ok(self.name)


class ConsensusStage:
    """How strongly the answers back the proposed one. A tie or weak support is uncertain
    (the pipeline then asks for another answer while the cap allows). With
    ``unanimous`` (the two-person rule), any disagreement is uncertain."""

    name = "consensus"

    def __init__(self, *, pass_at: float = 0.9, unanimous: bool = False) -> None:
        self.pass_at = pass_at
        self.unanimous = unanimous

    def run(self, evidence: Evidence) -> StageResult:
        n = len(evidence.answers)
        score = round(evidence.support * 100, 2)
        why = f"{n} answer(s); support {evidence.support:.0%}"
        split = len({evidence.task.answer_key(a.output) for a in evidence.answers}) > 1
        if evidence.tied or (self.unanimous and split) or evidence.support < self.pass_at:
            if evidence.tied:
                reason = "the answers are tied"
            elif self.unanimous and split:
                reason = "the two-person rule needs the reviewers to agree"
            else:
                reason = f"support below the {self.pass_at:.0%} needed"
            return StageResult(
                name=self.name, verdict="uncertain", score=min(score, 89.0), reasons=(reason, why)
            )
        return _ok(self.name, score, why)


class QaStage:
    """A random sample (``rate``) goes to manual review anyway."""

    name = "qa"

    def __init__(self, rate: float) -> None:
        if not 0 <= rate <= 1:
            raise ValueError("a sampling rate is between 0 and 1")
        self.rate = rate

    def run(self, evidence: Evidence) -> StageResult:
        if self.rate and evidence.rng.random() < self.rate:
            return StageResult(
                name=self.name,
                verdict="uncertain",
                score=75,
                reasons=(f"picked for a QA spot check ({self.rate:.0%} of this tier)",),
            )
        return _ok(self.name)
