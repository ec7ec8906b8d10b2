"""What the store conformance suite shares: the principals, the fully populated task, and
builders for postings and history events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ..clock import ManualClock
from ..ids import new_id
from ..ledger import Account, Entry, Posting, PostingKind
from ..lifecycle import Event, Status
from ..models import (
    Assignment,
    AssignmentStatus,
    Estimate,
    Kind,
    Principal,
    ReviewPolicy,
    RiskTier,
    Role,
    StageResult,
    Task,
    TaskEvent,
    Verification,
)
from ..money import Currency, Money
from ..store import Store

StoreFactory = Callable[[], Awaitable[Store]]

AGENT = Principal(org_id="org-a", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="org-a", id="alice", roles=frozenset({Role.REVIEWER}))
BOB = Principal(org_id="org-a", id="bob", roles=frozenset({Role.REVIEWER}))
ADMIN = Principal(org_id="org-a", id="root", roles=frozenset({Role.ADMIN}))
OUTSIDER = Principal(org_id="org-b", id="agent", roles=frozenset({Role.REQUESTER}))
SCHEMA = {
    "type": "object",
    "required": ["eligible"],
    "properties": {"eligible": {"type": "boolean"}, "note": {"type": "string"}},
}


def make_task(clock: ManualClock, **overrides: Any) -> Task:
    """A fully populated review task, with every optional field set."""
    now = clock.now()
    fields: dict[str, Any] = {
        "id": new_id(),
        "org_id": "org-a",
        "kind": Kind.REVIEW,
        "task_type": "refund",
        "title": "Refund order 42?",
        "instructions": "Check the order history.",
        "payload": {"order": {"id": 42, "items": ["a", "b"]}, "total": "89.99", "vip": True},
        "risk_tier": RiskTier.HIGH,
        "sla_seconds": 600,
        "payout": Money.parse("0.50", "USD"),
        "redundancy": 2,
        "max_answers": 3,
        "max_attempts": 2,
        "attempt": 1,
        "backup_at": now + timedelta(seconds=480),
        "gold_answer": {"type": "approve"},
        "idempotency_key": f"key-{new_id()}",
        "callback_url": "https://example.com/hook",
        "metadata": {"trace": "t-1", "nested": {"x": [1, 2.5, None]}},
        "action": {
            "name": "refund",
            "args": {"order_id": 42, "amount": "89.99"},
            "args_schema": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
        },
        "agent_reasoning": "The item arrived broken.",
        "confidence": 0.42,
        "allowed_decisions": ("approve", "reject", "modify", "respond"),
        "status": Status.ASSIGNED,
        "sandbox": True,
        "created_by": "agent",
        "output": None,
        "verification": Verification(
            outcome="manual_review",
            score=61.5,
            stages=(StageResult(name="schema", verdict="pass", score=100, reasons=("ok",)),),
            reasons=("needs a look",),
        ),
        "failure_reason": None,
        "assignments": (
            Assignment(
                worker_id="alice",
                status=AssignmentStatus.SUBMITTED,
                claimed_at=now,
                submitted_at=now + timedelta(seconds=3),
                output={"type": "approve", "message": None, "args": None},
            ),
            Assignment(worker_id="bob", claimed_at=now + timedelta(seconds=1)),
        ),
        "estimate": Estimate(
            worker_id="carol", amount=Money.parse("1.25", "USD"), eta_seconds=60, offered_at=now
        ),
        "request_fingerprint": "f" * 64,
        "answer_ttl_seconds": 300,
        "redact": ("args.amount",),
        "policy": ReviewPolicy(
            rule_id="refunds",
            policy_version=3,
            groups=("finance", "ops"),
            quorum=2,
            veto=False,
            on_timeout="approve",
            answer_ttl_seconds=120,
            standing=False,
        ),
        "reached_at": {Status.POSTED: now, Status.ASSIGNED: now + timedelta(seconds=1)},
        "created_at": now,
        "updated_at": now + timedelta(seconds=3),
        "expires_at": now + timedelta(seconds=600),
        "version": 1,
    }
    fields.update(overrides)
    return Task.model_validate(fields)


USD = Currency.USD


def _posting(
    posting_id: str,
    clock: ManualClock,
    *moves: tuple[Account, int],
    kind: PostingKind = PostingKind.DEPOSIT,
    volume: int = 0,
) -> Posting:
    return Posting(
        id=posting_id,
        kind=kind,
        org_id="org-a",
        currency=moves[0][0].currency,
        entries=tuple(Entry(account=a, amount=n) for a, n in moves),
        volume=volume,
        created_at=clock.now(),
        memo={"note": posting_id},
    )


def _event(task: Task, clock: ManualClock, event: Event = Event.CREATE) -> TaskEvent:
    return TaskEvent(
        id=new_id(),
        task_id=task.id,
        org_id=task.org_id,
        at=clock.now(),
        actor="agent",
        actor_role="requester",
        event=event,
        from_status=None if event is Event.CREATE else Status.POSTED,
        to_status=Status.POSTED if event is Event.CREATE else Status.ASSIGNED,
        reason="why not",
        data={"k": [1, "two"]},
    )
