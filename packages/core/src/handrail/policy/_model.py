"""Policy records: rules, the organisation's policy, reviewer groups, standing approvals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from .._jsonpatch import same
from .._redact import check_paths
from ..expressions import ExpressionError, compile_expression, compiles
from ..models import MAX_SLA_SECONDS, RiskTier, RuleOutcome

__all__ = [
    "MAX_RULES",
    "Policy",
    "PolicyRule",
    "ReviewerGroup",
    "StandingApproval",
]

MAX_RULES = 10_000
Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$")]
Glob = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_ASK_ONLY = (
    "reviewers",
    "quorum",
    "veto",
    "timeout_seconds",
    "on_timeout",
    "standing",
    "escalate_to",
    "escalate_after_seconds",
)


class PolicyRule(_Model):
    """One rule: which reviews it matches and what becomes of them.

    A rule matches a review when the tool's name fits one of ``tools`` (globs: ``*``,
    ``refund_*``), its task type one of ``task_types`` and its risk tier one of
    ``risk_tiers`` (empty: any), and ``when`` (an expression over ``args``, ``tool``,
    ``task_type``, ``risk_tier``, ``payload``, ``metadata`` and ``confidence``, evaluated
    strictly) is true.

    ``allow`` approves at once and ``deny`` rejects at once (with ``message``); ``ask``
    leaves it to people: those in ``reviewers`` (group names; empty: any reviewer of the
    organisation), ``quorum`` of them approving (any reject ends it unless ``veto`` is
    false; then the first side to reach the quorum wins), within ``timeout_seconds``,
    after which ``on_timeout`` stands. ``standing`` lets standing approvals decide reviews
    the rule asks for (single-reviewer rules only). When nobody has taken the review
    ``escalate_after_seconds`` after it was posted, the first group of ``escalate_to`` may
    decide it too (and so on, one group per period): the SLA sweep widens who may, as a
    recorded task event. Any outcome may set the shelf life of an approval
    (``answer_ttl_seconds``) and fields to mask (``redact``).
    """

    id: Slug
    description: str | None = Field(default=None, max_length=1_000)
    tools: tuple[Glob, ...] = Field(default=("*",), min_length=1, max_length=100)
    task_types: tuple[Glob, ...] = Field(default=(), max_length=100)
    risk_tiers: tuple[RiskTier, ...] = ()
    when: Annotated[str, Field(min_length=1, max_length=4_000)] | None = None
    outcome: RuleOutcome
    message: str | None = Field(default=None, max_length=10_000)
    reviewers: tuple[Slug, ...] = Field(default=(), max_length=100)
    quorum: int = Field(default=1, ge=1, le=13)
    veto: bool = True
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_SLA_SECONDS)
    on_timeout: Literal["reject", "approve"] = "reject"
    standing: bool = True
    escalate_to: tuple[Slug, ...] = Field(default=(), max_length=10)
    escalate_after_seconds: int | None = Field(default=None, ge=1, le=MAX_SLA_SECONDS)
    answer_ttl_seconds: int | None = Field(default=None, ge=1, le=365 * 24 * 3600)
    redact: tuple[Annotated[str, Field(max_length=300)], ...] = Field(default=(), max_length=100)

    _check_when = field_validator("when")(compiles)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_paths(self.redact)
        if self.outcome is not RuleOutcome.ASK:
            defaults = PolicyRule.model_fields
            odd = [n for n in _ASK_ONLY if getattr(self, n) != defaults[n].default]
            if odd:
                raise ValueError(f"{', '.join(odd)} only apply to 'ask' rules")
        if bool(self.escalate_to) != (self.escalate_after_seconds is not None):
            raise ValueError("escalate_to and escalate_after_seconds go together")
        if self.escalate_to and not self.reviewers:
            raise ValueError("escalate_to widens reviewers: name the reviewer groups first")
        return self


class Policy(_Model):
    """An organisation's policy: rules in order, the first that matches decides. No match
    means ``ask`` (any reviewer, one approval); a rule that errors means ``ask`` too.

    ``version`` counts saved versions (0: never saved); the store sets it.
    """

    rules: tuple[PolicyRule, ...] = Field(default=(), max_length=MAX_RULES)
    version: int = Field(default=0, ge=0)
    updated_at: datetime | None = None
    updated_by: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return self

    def rule(self, rule_id: str) -> PolicyRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


class ReviewerGroup(_Model):
    """Reviewers (principal ids) who may decide the reviews a rule hands to the group."""

    org_id: str
    name: Slug
    members: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = Field(
        default=(), max_length=10_000
    )
    description: str | None = Field(default=None, max_length=1_000)
    version: int = Field(default=1, ge=1)

    @field_validator("members")
    @classmethod
    def _sorted(cls, members: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(members)))


class StandingApproval(_Model):
    """A reviewer's approval of later reviews ("remember this"): the same ``tool``, with
    arguments satisfying ``when`` (or equal to ``args`` when there is no ``when``), until
    ``expires_at`` or until revoked."""

    id: str
    org_id: str
    tool: str
    when: str | None = None
    args: dict[str, JsonValue] | None = None
    granted_by: str
    task_id: str
    rule_id: str | None = None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    version: int = Field(default=1, ge=1)

    _check_when = field_validator("when")(compiles)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def covers(self, tool: str, args: dict[str, Any]) -> bool:
        """Whether this approval covers calling ``tool`` with ``args``. A constraint that
        errs covers nothing."""
        if tool != self.tool:
            return False
        if self.when is None:
            return self.args is not None and same(self.args, args)
        try:
            return compile_expression(self.when).test({"args": args, "tool": tool}, strict=True)
        except ExpressionError:
            return False
