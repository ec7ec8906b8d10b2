"""Evaluating a policy against a review: first match wins, and every doubt asks a person.

A :class:`CompiledPolicy` compiles a :class:`Policy` once: globs become regular
expressions, conditions become :class:`~handrail.expressions.Expression` trees, and rules
whose tools are plain names are indexed by name. Evaluating a review then looks only at
the rules that could match its tool (cached per tool name), in policy order, so a policy
of thousands of rules costs microseconds per review.

Fail closed: no matching rule means ``ask`` (any reviewer, one approval); a rule whose
condition errs (strict evaluation: a missing or mistyped value in a comparison) stops the
evaluation with ``ask``, under that rule's requirements when it is an ``ask`` rule.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..expressions import ExpressionError, compile_expression
from ..models import ReasonCode, ReviewPolicy, RiskTier, RuleOutcome, TaskSpec
from ._model import Policy, PolicyRule

__all__ = ["CompiledPolicy", "Explanation", "RuleTrace", "Subject"]

_GLOB_CHARS = frozenset("*?[")
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Subject:
    """What a policy judges: the action a review proposes, and where it comes from."""

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    task_type: str = ""
    risk_tier: RiskTier = RiskTier.MEDIUM
    payload: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    confidence: float | None = None

    @classmethod
    def of(
        cls, spec: TaskSpec, *, tool: str | None = None, args: Mapping[str, Any] | None = None
    ) -> Subject:
        """The review ``spec`` asks for, or (``tool``, ``args``) in its place: an edit."""
        if spec.action is None:
            raise ValueError("policies judge review tasks, which have an action")
        return cls(
            tool=tool or spec.action.name,
            args=spec.action.args if args is None else args,
            task_type=spec.task_type or spec.effective_task_type,
            risk_tier=spec.risk_tier,
            payload=spec.payload,
            metadata=spec.metadata,
            confidence=spec.confidence,
        )

    def context(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "args": self.args,
            "task_type": self.task_type,
            "risk_tier": self.risk_tier.value,
            "payload": self.payload,
            "metadata": self.metadata,
            "confidence": self.confidence,
        }


class RuleTrace(BaseModel):
    """One rule looked at during an explained evaluation, and what came of it."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    matched: bool
    reason: str


class Explanation(BaseModel):
    """The outcome of evaluating a policy against a review, and why.

    ``terms`` is what the review gets (the snapshot stored on the task as ``policy``);
    ``trace`` lists, with ``explain``, each rule in order up to the one that decided, and
    ``checked`` counts them.
    """

    model_config = ConfigDict(frozen=True)

    outcome: RuleOutcome
    rule_id: str | None
    reason_code: ReasonCode | None = None
    message: str | None = None
    error: str | None = None
    terms: ReviewPolicy
    redact: tuple[str, ...] = ()
    timeout_seconds: int | None = None
    trace: tuple[RuleTrace, ...] = ()
    checked: int = 0


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: PolicyRule
    tools: tuple[re.Pattern[str], ...]
    task_types: tuple[re.Pattern[str], ...]
    risk_tiers: frozenset[RiskTier]
    when: Callable[[Mapping[str, Any]], Any] | None  # the condition, compiled strict


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


class CompiledPolicy:
    """A policy ready to evaluate: compile once per policy version, evaluate per review."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules: list[_Rule] = []
        self._by_name: dict[str, list[int]] = {}
        self._globbed: list[int] = []
        for index, rule in enumerate(policy.rules):
            self._rules.append(
                _Rule(
                    rule=rule,
                    tools=tuple(_glob(t) for t in rule.tools),
                    task_types=tuple(_glob(t) for t in rule.task_types),
                    risk_tiers=frozenset(rule.risk_tiers),
                    when=(
                        compile_expression(rule.when).function(strict=True)
                        if rule.when is not None
                        else None
                    ),
                )
            )
            if any(_GLOB_CHARS & set(t) for t in rule.tools):
                self._globbed.append(index)
            else:
                for name in set(rule.tools):
                    self._by_name.setdefault(name, []).append(index)
        self._candidates: dict[str, tuple[int, ...]] = {}
        # outcomes are the same every time a rule decides: made once, shared (frozen)
        self._default = Explanation(
            outcome=RuleOutcome.ASK,
            rule_id=None,
            terms=ReviewPolicy(policy_version=policy.version),
        )
        self._decided: dict[int, Explanation] = {}

    def candidates(self, tool: str) -> tuple[int, ...]:
        """The indexes of the rules whose tools match ``tool``, in policy order."""
        found = self._candidates.get(tool)
        if found is None:
            named = self._by_name.get(tool, [])
            globbed = [i for i in self._globbed if self._tool_matches(i, tool)]
            found = tuple(sorted({*named, *globbed}))
            if len(self._candidates) >= _CACHE_LIMIT:
                self._candidates.clear()
            self._candidates[tool] = found
        return found

    def _tool_matches(self, index: int, tool: str) -> bool:
        return any(p.fullmatch(tool) for p in self._rules[index].tools)

    def evaluate(self, subject: Subject, *, explain: bool = False) -> Explanation:
        """The first matching rule's outcome; ``ask`` when none matches or one errs. With
        ``explain``, every rule up to the deciding one is traced, with the reason."""
        if not explain:
            return self._first(subject)
        return self._explained(subject)

    def _first(self, subject: Subject) -> Explanation:
        """The hot path: only the tool's candidate rules, nothing traced."""
        rules = self._rules
        context: dict[str, Any] | None = None
        for index in self.candidates(subject.tool):
            compiled = rules[index]
            if compiled.task_types and not any(
                p.fullmatch(subject.task_type) for p in compiled.task_types
            ):
                continue
            if compiled.risk_tiers and subject.risk_tier not in compiled.risk_tiers:
                continue
            when = compiled.when
            if when is not None:
                if context is None:
                    context = subject.context()
                try:
                    if when(context) is not True:
                        continue
                except ExpressionError as exc:
                    why = exc.errors[0].message if exc.errors else str(exc)
                    return self._erred(compiled.rule, why, (), 0)
            decided = self._decided.get(index)
            if decided is None:
                decided = self._decided[index] = self._matched(compiled.rule, (), 0)
            return decided
        return self._default

    def _explained(self, subject: Subject) -> Explanation:
        """The dry run: every rule in order, each with why it did or did not decide."""
        trace: list[RuleTrace] = []
        context = subject.context()

        def skip(rule: PolicyRule, why: str) -> None:
            trace.append(RuleTrace(rule_id=rule.id, matched=False, reason=why))

        for index, compiled in enumerate(self._rules):
            rule = compiled.rule
            if not self._tool_matches(index, subject.tool):
                skip(rule, "tool differs")
                continue
            if compiled.task_types and not any(
                p.fullmatch(subject.task_type) for p in compiled.task_types
            ):
                skip(rule, f"task type {subject.task_type!r} not in {list(rule.task_types)}")
                continue
            if compiled.risk_tiers and subject.risk_tier not in compiled.risk_tiers:
                skip(rule, f"risk tier {subject.risk_tier.value} not in the rule's")
                continue
            if compiled.when is not None:
                try:
                    holds = compiled.when(context) is True
                except ExpressionError as exc:
                    why = exc.errors[0].message if exc.errors else str(exc)
                    skip(rule, f"error: {why}")
                    return self._erred(rule, why, tuple(trace), len(trace))
                if not holds:
                    skip(rule, f"condition is false: {rule.when}")
                    continue
            trace.append(RuleTrace(rule_id=rule.id, matched=True, reason="matched"))
            return self._matched(rule, tuple(trace), len(trace))
        checked = len(trace)
        return self._default.model_copy(update={"trace": tuple(trace), "checked": checked})

    def _matched(self, rule: PolicyRule, trace: tuple[RuleTrace, ...], checked: int) -> Explanation:
        codes = {
            RuleOutcome.ALLOW: ReasonCode.POLICY_ALLOW,
            RuleOutcome.DENY: ReasonCode.POLICY_DENY,
        }
        return Explanation(
            outcome=rule.outcome,
            rule_id=rule.id,
            reason_code=codes.get(rule.outcome),
            message=rule.message,
            terms=self.terms(rule),
            redact=rule.redact,
            timeout_seconds=rule.timeout_seconds,
            trace=trace,
            checked=checked,
        )

    def _erred(
        self, rule: PolicyRule, why: str, trace: tuple[RuleTrace, ...], checked: int
    ) -> Explanation:
        """A rule that errs asks a person: under its own requirements when it asks anyway,
        otherwise under the default ones (an allow must not become an approval, nor a deny
        a silent pass)."""
        if rule.outcome is RuleOutcome.ASK:
            terms = self.terms(rule)
        else:
            terms = ReviewPolicy(rule_id=rule.id, policy_version=self.policy.version)
        terms = terms.model_copy(update={"outcome": RuleOutcome.ASK, "error": why})
        return Explanation(
            outcome=RuleOutcome.ASK,
            rule_id=rule.id,
            error=why,
            terms=terms,
            redact=rule.redact,
            timeout_seconds=rule.timeout_seconds,
            trace=trace,
            checked=checked,
        )

    def terms(self, rule: PolicyRule) -> ReviewPolicy:
        """What a review matched by ``rule`` gets."""
        if rule.outcome is not RuleOutcome.ASK:
            return ReviewPolicy(
                outcome=rule.outcome,
                rule_id=rule.id,
                policy_version=self.policy.version,
                answer_ttl_seconds=rule.answer_ttl_seconds,
            )
        return ReviewPolicy(
            outcome=RuleOutcome.ASK,
            rule_id=rule.id,
            policy_version=self.policy.version,
            groups=rule.reviewers,
            quorum=rule.quorum,
            veto=rule.veto,
            on_timeout=rule.on_timeout,
            answer_ttl_seconds=rule.answer_ttl_seconds,
            standing=rule.standing,
            escalate_to=tuple(g for g in rule.escalate_to if g not in rule.reviewers),
            escalate_after_seconds=rule.escalate_after_seconds,
        )
