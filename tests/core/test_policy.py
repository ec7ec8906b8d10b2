"""Policy rules on their own: matching by tool glob, task type, risk tier and conditions on
the arguments; first match wins; fail closed on no match and on errors; the dry run's
reasons; what a rule may and may not say."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError as PydanticError

from handrail import ReasonCode, RiskTier, RuleOutcome
from handrail.policy import CompiledPolicy, Policy, PolicyRule, Subject


def policy(*rules: dict[str, Any]) -> CompiledPolicy:
    return CompiledPolicy(Policy.model_validate({"rules": rules}))


def subject(tool: str = "refund", **args: Any) -> Subject:
    return Subject(tool=tool, args=args, task_type=tool)


RULES = policy(
    {"id": "no-prod", "tools": ["delete_*", "drop_*"], "when": 'args.path starts_with "/prod"',
     "outcome": "deny", "message": "never in production"},
    {"id": "internal-mail", "tools": ["send_email"], "when": 'args.to ends_with "@ourco.com"',
     "outcome": "allow"},
    {"id": "big-refund", "tools": ["refund"], "when": "args.amount > 1000", "outcome": "ask",
     "reviewers": ["finance"], "quorum": 2},
    {"id": "small-refund", "tools": ["refund"], "outcome": "allow"},
    {"id": "critical", "tools": ["*"], "risk_tiers": ["critical"], "outcome": "ask",
     "reviewers": ["security"]},
    {"id": "kyc", "tools": ["*"], "task_types": ["kyc_*"], "outcome": "deny"},
)  # fmt: skip


class TestMatching:
    @pytest.mark.parametrize(
        ("tool", "args", "outcome", "rule"),
        [
            ("delete_rows", {"path": "/prod/users"}, "deny", "no-prod"),
            ("drop_table", {"path": "/prod"}, "deny", "no-prod"),
            ("delete_rows", {"path": "/staging/users"}, "ask", None),
            ("send_email", {"to": "ann@ourco.com"}, "allow", "internal-mail"),
            ("send_email", {"to": "ann@ourco.com.evil.io"}, "ask", None),
            ("refund", {"amount": 5000}, "ask", "big-refund"),
            ("refund", {"amount": 1000}, "allow", "small-refund"),
            ("refund", {"amount": 12.5}, "allow", "small-refund"),
            ("refund_all", {"amount": 5}, "ask", None),  # no glob: an exact name only
        ],
    )
    def test_tools_globs_and_conditions(
        self, tool: str, args: dict[str, Any], outcome: str, rule: str | None
    ) -> None:
        found = RULES.evaluate(subject(tool, **args))
        assert (found.outcome.value, found.rule_id) == (outcome, rule)

    def test_first_match_wins(self) -> None:
        ordered = policy(
            {"id": "a", "tools": ["refund"], "outcome": "deny"},
            {"id": "b", "tools": ["*"], "outcome": "allow"},
        )
        assert ordered.evaluate(subject("refund")).rule_id == "a"
        assert ordered.evaluate(subject("email")).rule_id == "b"
        swapped = policy(
            {"id": "b", "tools": ["*"], "outcome": "allow"},
            {"id": "a", "tools": ["refund"], "outcome": "deny"},
        )
        assert swapped.evaluate(subject("refund")).rule_id == "b"

    def test_task_type_and_risk_tier(self) -> None:
        kyc = Subject(tool="lookup", task_type="kyc_check")
        assert RULES.evaluate(kyc).rule_id == "kyc"
        risky = Subject(tool="lookup", task_type="other", risk_tier=RiskTier.CRITICAL)
        found = RULES.evaluate(risky)
        assert found.rule_id == "critical" and found.terms.groups == ("security",)
        assert RULES.evaluate(Subject(tool="lookup", task_type="other")).rule_id is None

    def test_conditions_see_the_whole_review(self) -> None:
        rules = policy(
            {"id": "vip", "tools": ["*"], "outcome": "allow",
             "when": "payload.customer.tier == 'vip' and confidence >= 0.9 "
                     "and metadata.team in ['support'] and risk_tier == 'low' and tool == 'x'"},
        )  # fmt: skip
        review = Subject(
            tool="x",
            payload={"customer": {"tier": "vip"}},
            metadata={"team": "support"},
            confidence=0.95,
            risk_tier=RiskTier.LOW,
        )
        assert rules.evaluate(review).outcome is RuleOutcome.ALLOW
        unsure = dataclasses.replace(review, confidence=0.5)
        assert rules.evaluate(unsure).outcome is RuleOutcome.ASK

    def test_outcomes_carry_reason_codes_and_terms(self) -> None:
        allowed = RULES.evaluate(subject("refund", amount=5))
        assert allowed.reason_code is ReasonCode.POLICY_ALLOW
        denied = RULES.evaluate(subject("delete_x", path="/prod"))
        assert (denied.reason_code, denied.message) == (
            ReasonCode.POLICY_DENY,
            "never in production",
        )
        asked = RULES.evaluate(subject("refund", amount=5000))
        assert asked.reason_code is None
        assert (asked.terms.quorum, asked.terms.veto, asked.terms.groups) == (2, True, ("finance",))

    def test_a_thousand_rules_look_only_at_candidates(self) -> None:
        many = [{"id": f"r{i}", "tools": [f"tool_{i}"], "outcome": "deny"} for i in range(999)]
        big = policy(*many, {"id": "last", "tools": ["tool_*"], "outcome": "allow"})
        assert big.candidates("tool_5") == (5, 999)
        assert big.evaluate(subject("tool_5")).rule_id == "r5"
        assert big.candidates("tool_x") == (999,)  # only the glob rule is looked at
        assert big.evaluate(subject("tool_x")).rule_id == "last"
        assert big.evaluate(subject("tool_x"), explain=True).checked == 1_000


class TestFailClosed:
    def test_no_match_asks_anyone(self) -> None:
        found = policy().evaluate(subject("anything"))
        assert found.outcome is RuleOutcome.ASK and found.rule_id is None
        assert (found.terms.groups, found.terms.quorum, found.terms.on_timeout) == (
            (),
            1,
            "reject",
        )

    @pytest.mark.parametrize(
        "args",
        [
            {"amount": "5000"},  # a string where a number was meant
            {},  # missing
            {"amount": None},
            {"amount": [5000]},
        ],
    )
    def test_an_erring_allow_rule_asks_and_stops(self, args: dict[str, Any]) -> None:
        rules = policy(
            {"id": "small", "tools": ["refund"], "when": "args.amount < 100", "outcome": "allow"},
            {"id": "rest", "tools": ["*"], "outcome": "allow"},
        )
        found = rules.evaluate(subject("refund", **args))
        assert found.outcome is RuleOutcome.ASK  # never the later allow
        assert found.rule_id == "small" and found.error
        assert found.terms.error == found.error and found.terms.quorum == 1

    def test_an_erring_deny_rule_asks_instead_of_passing(self) -> None:
        rules = policy(
            {"id": "no-prod", "tools": ["delete"], "when": 'args.path starts_with "/prod"',
             "outcome": "deny"},
            {"id": "rest", "tools": ["*"], "outcome": "allow"},
        )  # fmt: skip
        found = rules.evaluate(subject("delete", path=42))
        assert (found.outcome, found.rule_id) == (RuleOutcome.ASK, "no-prod")
        assert "starts_with needs two strings" in (found.error or "")

    def test_an_erring_ask_rule_keeps_its_requirements(self) -> None:
        rules = policy(
            {"id": "big", "tools": ["refund"], "when": "args.amount * 2 > 10", "outcome": "ask",
             "reviewers": ["finance"], "quorum": 3},
        )  # fmt: skip
        found = rules.evaluate(subject("refund", amount="x"))
        assert found.outcome is RuleOutcome.ASK and found.error
        assert (found.terms.groups, found.terms.quorum) == (("finance",), 3)

    def test_guarded_conditions_do_not_err(self) -> None:
        rules = policy(
            {"id": "big", "tools": ["refund"], "outcome": "deny",
             "when": "exists(args.amount) and args.amount > 1000"},
        )  # fmt: skip
        found = rules.evaluate(subject("refund"))
        assert found.error is None and found.rule_id is None


class TestExplain:
    def test_every_rule_up_to_the_deciding_one_says_why(self) -> None:
        found = RULES.evaluate(subject("refund", amount=50), explain=True)
        assert [(t.rule_id, t.matched, t.reason) for t in found.trace] == [
            ("no-prod", False, "tool differs"),
            ("internal-mail", False, "tool differs"),
            ("big-refund", False, "condition is false: args.amount > 1000"),
            ("small-refund", True, "matched"),
        ]

    def test_errors_and_filters_are_explained(self) -> None:
        found = RULES.evaluate(
            Subject(tool="x", task_type="y", risk_tier=RiskTier.LOW), explain=True
        )
        reasons = {t.rule_id: t.reason for t in found.trace}
        assert reasons["critical"] == "risk tier low not in the rule's"
        assert reasons["kyc"] == "task type 'y' not in ['kyc_*']"
        erred = RULES.evaluate(subject("send_email", to=5), explain=True)
        assert erred.trace[-1].reason.startswith("error: ends_with needs two strings")


class TestRulesAreChecked:
    @pytest.mark.parametrize(
        ("rule", "problem"),
        [
            ({"id": "x", "outcome": "allow", "when": "args.a >"}, "expected a value"),
            ({"id": "x", "outcome": "allow", "quorum": 2}, "quorum only apply to 'ask' rules"),
            ({"id": "x", "outcome": "deny", "reviewers": ["a"]}, "reviewers only apply"),
            ({"id": "x", "outcome": "ask", "redact": ["card"]}, "must start with 'args.'"),
            ({"id": "x", "outcome": "ask", "quorum": 14}, "less than or equal to 13"),
            ({"id": "bad id!", "outcome": "ask"}, "should match pattern"),
            ({"id": "x", "outcome": "maybe"}, "'allow', 'deny' or 'ask'"),
        ],
    )
    def test_a_bad_rule_is_refused(self, rule: dict[str, Any], problem: str) -> None:
        with pytest.raises(PydanticError, match=problem):
            PolicyRule.model_validate(rule)

    def test_rule_ids_are_unique(self) -> None:
        with pytest.raises(PydanticError, match="rule id 'a' is used twice"):
            Policy.model_validate({"rules": [{"id": "a", "outcome": "ask"}] * 2})
