"""Approval policies: which reviews are decided at once, and who may decide the rest.

An organisation's :class:`Policy` is an ordered list of :class:`PolicyRule`; the first
rule matching a review decides its outcome (``allow``, ``deny`` or ``ask``) and, for
``ask``, who may decide (reviewer groups), how many must approve (quorum), by when, and
what stands after that. :class:`CompiledPolicy` evaluates it; the engine enforces it on
every path. See docs/policies.md.
"""

from ._evaluate import CompiledPolicy, Explanation, RuleTrace, Subject
from ._model import MAX_RULES, Policy, PolicyRule, ReviewerGroup, StandingApproval

__all__ = [
    "MAX_RULES",
    "CompiledPolicy",
    "Explanation",
    "Policy",
    "PolicyRule",
    "ReviewerGroup",
    "RuleTrace",
    "StandingApproval",
    "Subject",
]
