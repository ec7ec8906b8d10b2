"""Handrail: verified human decisions for AI agents.

>>> from handrail import Handrail
>>> with Handrail.local(sandbox=True) as hr:
...     decision = hr.review("send_email", {"to": "a@b.c"}, reasoning="customer asked")
...     decision.type
<DecisionType.APPROVE: 'approve'>
"""

from .client import Backend, Handrail, HttpBackend, LocalBackend, RetryPolicy, Tasks
from .clock import Clock, ManualClock, SystemClock
from .engine import Engine
from .errors import (
    ConcurrencyConflict,
    DecisionNotAllowed,
    HandrailError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransition,
    NoAnswer,
    NotAssigned,
    NotFound,
    PermissionDenied,
    StoreError,
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
    RiskTier,
    Role,
    StageResult,
    Task,
    TaskEvent,
    TaskSpec,
    Verification,
)
from .money import Currency, Money
from .notify import ChangeFeedNotifier, LocalNotifier, Notifier
from .sandbox import SandboxReviewer, SandboxRule
from .store import MemoryStore, Store
from .verification import PassThroughVerifier, Verifier

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Assignment",
    "AssignmentStatus",
    "Backend",
    "ChangeFeedNotifier",
    "Clock",
    "ConcurrencyConflict",
    "Currency",
    "Decision",
    "DecisionNotAllowed",
    "DecisionType",
    "Engine",
    "Escrow",
    "Estimate",
    "Event",
    "Handrail",
    "HandrailError",
    "HttpBackend",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidTransition",
    "Kind",
    "LocalBackend",
    "LocalNotifier",
    "ManualClock",
    "MemoryStore",
    "Money",
    "NoAnswer",
    "NoEscrow",
    "NotAssigned",
    "NotFound",
    "Notifier",
    "Page",
    "PassThroughVerifier",
    "PermissionDenied",
    "Principal",
    "RetryPolicy",
    "RiskTier",
    "Role",
    "SandboxReviewer",
    "SandboxRule",
    "StageResult",
    "Status",
    "Store",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskEvent",
    "TaskSpec",
    "Tasks",
    "ValidationError",
    "ValidationIssue",
    "Verification",
    "Verifier",
    "WaitTimeout",
    "__version__",
]
