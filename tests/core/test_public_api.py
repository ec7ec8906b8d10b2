"""The public surface: a curated __all__, and one error tree drawn in its docstring."""

from __future__ import annotations

import inspect

import handrail
import handrail.client
from handrail import errors

PUBLIC = [
    "Action",
    "Assignment",
    "AssignmentStatus",
    "AuditEntry",
    "ChainReport",
    "ChangeFeedWaker",
    "Clock",
    "ConcurrencyConflict",
    "Currency",
    "Decision",
    "DecisionNotAllowed",
    "DecisionTokens",
    "DecisionType",
    "EditDenied",
    "Engine",
    "Escrow",
    "Estimate",
    "Event",
    "Explanation",
    "Handrail",
    "HandrailError",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidTransition",
    "Kind",
    "LocalWaker",
    "ManualClock",
    "MemoryStore",
    "Money",
    "NoAnswer",
    "NoEscrow",
    "NotAssigned",
    "NotEligible",
    "NotFound",
    "Page",
    "PassThroughVerifier",
    "PermissionDenied",
    "Policy",
    "PolicyRule",
    "Principal",
    "ReasonCode",
    "Remember",
    "RetryPolicy",
    "ReviewExpired",
    "ReviewPolicy",
    "ReviewerGroup",
    "RiskTier",
    "Role",
    "RuleOutcome",
    "SandboxReviewer",
    "SandboxRule",
    "Session",
    "StageResult",
    "StandingApproval",
    "Status",
    "Store",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskEvent",
    "TaskExpired",
    "TaskSpec",
    "Tasks",
    "TokenClaims",
    "TokenRejected",
    "ValidationError",
    "ValidationIssue",
    "Verification",
    "Verifier",
    "WaitTimeout",
    "Waker",
    "__version__",
]
"""Exactly what ``from handrail import *`` gives: a name joins (or leaves) the public API
here, on purpose, never by accident (no transports, no internals)."""

CLIENT = [
    "AsyncEventStream",
    "AuditOps",
    "EventStream",
    "Handrail",
    "HttpSession",
    "LedgerOps",
    "OnTimeout",
    "PolicyOps",
    "RetryPolicy",
    "Tasks",
    "WorkerOps",
    "decision_of",
]


def test_all_is_exactly_the_public_api() -> None:
    assert handrail.__all__ == PUBLIC
    assert handrail.client.__all__ == CLIENT


def test_all_is_sorted_and_importable() -> None:
    names = [n for n in handrail.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in handrail.__all__:
        assert getattr(handrail, name) is not None
    for name in handrail.client.__all__:
        assert getattr(handrail.client, name) is not None
    for gone in ("Backend", "LocalBackend", "HttpBackend"):
        assert not hasattr(handrail, gone)
        assert not hasattr(handrail.client, gone)


def test_every_error_is_in_the_tree_and_the_drawing() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 12
    drawing = errors.__doc__ or ""
    for cls in classes:
        assert issubclass(cls, errors.HandrailError)
        assert cls.__name__ in drawing, f"{cls.__name__} missing from the drawn tree"
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in handrail.__all__
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "error codes must be distinct"
