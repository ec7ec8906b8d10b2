"""Every error Handrail raises, in one tree.

::

    HandrailError                      base of everything below; ``.code`` is a stable slug
    ├── NotFound                       no such object in the caller's organisation (resource, id)
    ├── InvalidTransition              the lifecycle forbids it (task_id, from_status, event)
    ├── ValidationError                bad input; ``.errors`` lists each problem with its JSON path
    │   ├── DecisionNotAllowed         decision type not in the task's ``allowed_decisions``
    │   └── EditDenied                 a modify the policy would deny, or needs others to approve
    ├── PermissionDenied               the principal's role or identity may not do this
    │   ├── NotAssigned                a worker acted on a task it holds no assignment on
    │   ├── NotEligible                not a reviewer the review's policy allows, or its requester
    │   └── TokenRejected              a decision token forged, late, spent or for another task
    ├── IdempotencyConflict            same idempotency key, different request (key, task_id)
    ├── InsufficientFunds              the balance cannot cover a hold (account, needed, available)
    ├── ConcurrencyConflict            optimistic write lost a race; the engine retries it
    ├── WaitTimeout                    (also ``TimeoutError``) no terminal state within the timeout
    ├── NoAnswer                       a judgment ended without a verified answer (task_id, status)
    └── StoreError                     the store failed (connection lost, schema missing, ...)

Each error carries the context a caller needs as attributes, and ``to_dict()`` gives a
JSON-ready view (the server turns it into RFC 9457 problem details). Errors never carry
another organisation's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConcurrencyConflict",
    "DecisionNotAllowed",
    "EditDenied",
    "HandrailError",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidTransition",
    "NoAnswer",
    "NotAssigned",
    "NotEligible",
    "NotFound",
    "PermissionDenied",
    "StoreError",
    "TokenRejected",
    "ValidationError",
    "ValidationIssue",
    "WaitTimeout",
]


class HandrailError(Exception):
    """Base class of every Handrail error."""

    code: str = "handrail_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def context(self) -> dict[str, Any]:
        """The structured context of this error (subclasses add theirs)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.context()}


class NotFound(HandrailError):
    code = "not_found"

    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} {id!r} not found")
        self.resource = resource
        self.id = id

    def context(self) -> dict[str, Any]:
        return {"resource": self.resource, "id": self.id}


class InvalidTransition(HandrailError):
    code = "invalid_transition"

    def __init__(
        self,
        task_id: str,
        from_status: str,
        event: str,
        to_status: str | None = None,
        detail: str | None = None,
    ) -> None:
        target = f" to {to_status!r}" if to_status else ""
        why = f": {detail}" if detail else ""
        super().__init__(f"task {task_id}: cannot {event} from {from_status!r}{target}{why}")
        self.task_id = task_id
        self.from_status = from_status
        self.event = event
        self.to_status = to_status
        self.detail = detail

    def context(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "from_status": self.from_status,
            "event": self.event,
            "to_status": self.to_status,
        }


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem with the input: where (a JSON path such as ``$.action.args.amount``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ValidationError(HandrailError):
    code = "validation_error"

    def __init__(self, errors: Iterable[ValidationIssue], summary: str = "invalid input") -> None:
        self.errors: Sequence[ValidationIssue] = tuple(errors)
        listed = "; ".join(str(e) for e in self.errors)
        super().__init__(f"{summary}: {listed}" if listed else summary)

    @classmethod
    def at(cls, path: str, message: str) -> ValidationError:
        return cls([ValidationIssue(path, message)])

    def context(self) -> dict[str, Any]:
        return {"errors": [{"path": e.path, "message": e.message} for e in self.errors]}


class DecisionNotAllowed(ValidationError):
    code = "decision_not_allowed"

    def __init__(self, task_id: str, decision: str, allowed: Sequence[str]) -> None:
        super().__init__(
            [ValidationIssue("$.type", f"{decision!r} is not one of {list(allowed)}")],
            summary=f"task {task_id}: decision not allowed",
        )
        self.task_id = task_id
        self.decision = decision
        self.allowed = tuple(allowed)

    def context(self) -> dict[str, Any]:
        return {
            **super().context(),
            "task_id": self.task_id,
            "decision": self.decision,
            "allowed": list(self.allowed),
        }


class EditDenied(ValidationError):
    """A reviewer's edit (modified arguments or tool) that the policy refuses: a rule
    would deny the edited action, or it needs reviewers or a quorum this decision lacks."""

    code = "edit_denied"

    def __init__(self, task_id: str, rule_id: str | None, detail: str) -> None:
        super().__init__(
            [ValidationIssue("$.args", detail)], summary=f"task {task_id}: edit refused"
        )
        self.task_id = task_id
        self.rule_id = rule_id

    def context(self) -> dict[str, Any]:
        return {**super().context(), "task_id": self.task_id, "rule_id": self.rule_id}


class PermissionDenied(HandrailError):
    code = "permission_denied"

    def __init__(self, principal: str, action: str, detail: str | None = None) -> None:
        why = f": {detail}" if detail else ""
        super().__init__(f"{principal} may not {action}{why}")
        self.principal = principal
        self.action = action

    def context(self) -> dict[str, Any]:
        return {"principal": self.principal, "action": self.action}


class NotAssigned(PermissionDenied):
    code = "not_assigned"

    def __init__(self, task_id: str, worker_id: str) -> None:
        super().__init__(worker_id, f"act on task {task_id}", "it holds no active assignment")
        self.task_id = task_id
        self.worker_id = worker_id

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "worker_id": self.worker_id}


class NotEligible(PermissionDenied):
    """The principal may not decide this review: it asked for it, or the policy's rule
    names reviewer groups it is not in. The refusal is recorded in the audit log."""

    code = "not_eligible"

    def __init__(self, principal: str, task_id: str, reason: str) -> None:
        super().__init__(principal, f"decide task {task_id}", reason)
        self.task_id = task_id
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {**super().context(), "task_id": self.task_id, "reason": self.reason}


class TokenRejected(PermissionDenied):
    """A decision token that cannot be used: ``reason`` is ``invalid`` (malformed or
    forged), ``expired``, ``used``, ``wrong_task``, ``wrong_decision`` or ``unavailable``
    (no token secret is configured)."""

    code = "token_rejected"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__("decision token", "decide", detail)
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {**super().context(), "reason": self.reason}


class IdempotencyConflict(HandrailError):
    code = "idempotency_conflict"

    def __init__(self, key: str, task_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for task {task_id} with a different request"
        )
        self.key = key
        self.task_id = task_id

    def context(self) -> dict[str, Any]:
        return {"idempotency_key": self.key, "task_id": self.task_id}


class InsufficientFunds(HandrailError):
    code = "insufficient_funds"

    def __init__(self, account: str, currency: str, needed: int, available: int) -> None:
        super().__init__(
            f"account {account} holds {available} {currency} (minor units); {needed} needed"
        )
        self.account = account
        self.currency = currency
        self.needed = needed
        self.available = available

    def context(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "currency": self.currency,
            "needed": self.needed,
            "available": self.available,
        }


class ConcurrencyConflict(HandrailError):
    """A write lost an optimistic-concurrency race. The engine re-reads and retries."""

    code = "concurrency_conflict"

    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} {id} was changed concurrently")
        self.resource = resource
        self.id = id

    def context(self) -> dict[str, Any]:
        return {"resource": self.resource, "id": self.id}


class WaitTimeout(HandrailError, TimeoutError):
    code = "wait_timeout"

    def __init__(self, task_id: str, timeout: float, status: str) -> None:
        super().__init__(f"task {task_id} still {status!r} after {timeout:g}s")
        self.task_id = task_id
        self.timeout = timeout
        self.status = status

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "timeout": self.timeout, "status": self.status}


class NoAnswer(HandrailError):
    code = "no_answer"

    def __init__(self, task_id: str, status: str, reason: str | None = None) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"task {task_id} ended {status} without a verified answer{why}")
        self.task_id = task_id
        self.status = status
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "status": self.status, "reason": self.reason}


class StoreError(HandrailError):
    code = "store_error"
