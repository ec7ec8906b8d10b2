"""Handrail: verified human decisions for AI agents.

>>> from handrail import Handrail
>>> with Handrail.local(sandbox=True) as hr:
...     decision = hr.review("send_email", {"to": "a@b.c"}, reasoning="customer asked")
...     decision.type
<DecisionType.APPROVE: 'approve'>
"""

from .audit import AuditEntry, ChainReport
from .client import Handrail, RetryPolicy, Tasks
from .clock import Clock, ManualClock, SystemClock
from .engine import Engine
from .errors import (
    ConcurrencyConflict,
    DecisionNotAllowed,
    EditDenied,
    HandrailError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransition,
    NoAnswer,
    NotAssigned,
    NotEligible,
    NotFound,
    PermissionDenied,
    ReviewExpired,
    StoreError,
    TaskExpired,
    TokenRejected,
    ValidationError,
    ValidationIssue,
    WaitTimeout,
)
from .escrow import Escrow, NoEscrow
from .lifecycle import Event, Status
from .models import (
    Action,
    Assignment,
    AssignmentStatus,
    Decision,
    DecisionType,
    Estimate,
    Kind,
    Page,
    Principal,
    ReasonCode,
    Remember,
    ReviewPolicy,
    RiskTier,
    Role,
    RuleOutcome,
    StageResult,
    Task,
    TaskEvent,
    TaskSpec,
    Verification,
)
from .money import Currency, Money
from .policy import Explanation, Policy, PolicyRule, ReviewerGroup, StandingApproval
from .sandbox import SandboxReviewer, SandboxRule
from .session import Session
from .store import MemoryStore, Store
from .tokens import DecisionTokens, TokenClaims
from .verification import PassThroughVerifier, Verifier
from .wake import ChangeFeedWaker, LocalWaker, Waker

__version__ = "0.1.0"

__all__ = [
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
