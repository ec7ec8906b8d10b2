"""Every error Handrail raises, in one tree: each class carries its HTTP status and its
problem code, so adding an error is adding a class here and nothing else.

::

    HandrailError              400 handrail_error        base of all; ``.code`` is a stable slug
    ├── NotFound               404 not_found             no such object in the caller's org
    ├── InvalidTransition      409 invalid_transition    the lifecycle forbids it (410: expired)
    │   └── TaskExpired        410 task_expired          too late: the task expired undecided
    ├── ValidationError        422 validation_error      bad input; ``.errors`` has JSON paths
    │   ├── DecisionNotAllowed 422 decision_not_allowed  not in the task's ``allowed_decisions``
    │   ├── EditDenied         422 edit_denied           a modify the policy denies or must vet
    │   └── ExpressionError    422 expression_error      a bad rule expression (in expressions)
    ├── PermissionDenied       403 permission_denied     the principal's role may not do this
    │   ├── NotAssigned        403 not_assigned          acted on a task it holds no claim on
    │   ├── NotEligible        403 not_eligible          not a reviewer the policy allows
    │   └── TokenRejected      403 token_rejected        a decision token forged, late or spent
    ├── IdempotencyConflict    422 idempotency_conflict  same key, different request
    ├── InsufficientFunds      402 insufficient_funds    the balance cannot cover a hold
    ├── ConcurrencyConflict    409 concurrency_conflict  a write lost a race; the engine retries
    ├── WaitTimeout            408 wait_timeout          (a ``TimeoutError``) still not terminal
    │   └── ReviewExpired      408 review_expired        the awaited review expired undecided
    ├── NoAnswer               409 no_answer             a judgment ended without an answer
    └── StoreError             503 store_error           the store failed (connection, schema)

Each error carries the context a caller needs as attributes (``context()``; ``to_dict()``
adds code and message). ``to_problem()`` is its RFC 9457 problem-details body, exactly as
the server sends it, and ``HandrailError.from_problem()`` turns such a body back into the
same class with the same context, which is how the HTTP client raises what the engine
raised. Every subclass registers its code when it is defined (codes are unique), so
neither side keeps a table of its own. Errors never carry another organisation's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

__all__ = [
    "PROBLEM_TYPE_BASE",
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
    "ReviewExpired",
    "StoreError",
    "TaskExpired",
    "TokenRejected",
    "ValidationError",
    "ValidationIssue",
    "WaitTimeout",
    "problem_body",
]

PROBLEM_TYPE_BASE = "https://handrail.dev/problems/"
"""A problem's ``type`` is this followed by its ``code``."""

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    503: "Service unavailable",
}
_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "instance", "request_id"})
"""The problem's own members: a context field may not take one of these names."""


def problem_body(status: int, code: str, detail: str, **context: Any) -> dict[str, Any]:
    """An RFC 9457 problem-details body (the server adds ``instance`` and ``request_id``).
    Errors that are not Handrail's (a 401, a 429) are worded by this too."""
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **context,
    }


def _text(body: Mapping[str, Any], name: str, default: str = "") -> str:
    value = body.get(name)
    return default if value is None else str(value)


def _optional(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return None if value is None else str(value)


class HandrailError(Exception):
    """Base class of every Handrail error.

    A subclass sets ``code`` (its problem type, unique) and ``http_status``,
    lists its context in ``context()`` and rebuilds itself from that context in
    ``_rebuild()``. ``fallback=True`` in the class statement makes it the class a problem
    with its status becomes when the problem's code names no class.
    """

    code: str = "handrail_error"
    http_status: int = 400
    wire_names: ClassVar[Mapping[str, str]] = {}
    """Context fields renamed in the problem body because their name is a problem member
    (a task's ``status`` travels as ``task_status``)."""

    _by_code: ClassVar[dict[str, type[HandrailError]]] = {}
    _by_status: ClassVar[dict[int, type[HandrailError]]] = {}

    def __init_subclass__(cls, *, fallback: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code in HandrailError._by_code:  # a subclass must name a code of its own
            raise TypeError(f"{cls.__name__}: error code {cls.code!r} is already taken")
        if fallback and cls.http_status in HandrailError._by_status:
            raise TypeError(f"{cls.__name__}: status {cls.http_status} has a fallback already")
        HandrailError._by_code[cls.code] = cls
        if fallback:
            HandrailError._by_status[cls.http_status] = cls

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def context(self) -> dict[str, Any]:
        """The structured context of this error (subclasses add theirs)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.context()}

    # ---------------------------------------------------------------- problem details

    def to_problem(self) -> dict[str, Any]:
        """This error as an RFC 9457 problem-details body: ``type``, ``title``, ``status``,
        ``detail`` (the message), ``code`` and the context fields."""
        context = {self.wire_names.get(k, k): v for k, v in self.context().items()}
        clash = _MEMBERS.intersection(context)
        if clash:
            raise TypeError(f"{type(self).__name__}: rename {sorted(clash)} in wire_names")
        return problem_body(self.http_status, self.code, self.message, **context)

    @classmethod
    def from_problem(cls, body: Mapping[str, Any], status: int | None = None) -> HandrailError:
        """The error a problem body stands for, with its context and with the problem's
        ``detail`` as its message. A code no class owns becomes the fallback class of the
        status (``NotFound`` for a 404, ``PermissionDenied`` for a 403...) or else a plain
        ``HandrailError``; either keeps the code it was sent. So does a body whose fields do
        not fit its code."""
        if status is None:
            given = body.get("status")
            status = given if isinstance(given, int) else 400
        code = _text(body, "code")
        detail = _text(body, "detail") or _text(body, "title") or code or f"HTTP {status}"
        error: HandrailError = HandrailError(detail)
        for kind in (cls._by_code.get(code), cls._by_status.get(status)):
            if kind is None:
                continue
            renamed = {wire: name for name, wire in kind.wire_names.items()}
            fields = {renamed.get(k, k): v for k, v in body.items() if k not in _MEMBERS}
            try:
                error = kind._rebuild(fields, detail)
                break
            except (TypeError, ValueError):  # fields that do not fit: try the next kind
                continue
        if code and code != error.code:
            error.code = code
        error.message = detail
        error.args = (detail,)
        return error

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        """An instance from its context fields (missing ones take neutral defaults)."""
        return cls(detail)


HandrailError._by_code[HandrailError.code] = HandrailError


class NotFound(HandrailError, fallback=True):
    code = "not_found"
    http_status = 404

    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} {id!r} not found")
        self.resource = resource
        self.id = id

    def context(self) -> dict[str, Any]:
        return {"resource": self.resource, "id": self.id}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "resource", "resource"), _text(fields, "id", "?"))


class InvalidTransition(HandrailError):
    """The lifecycle forbids the move: 409, or 410 when the task has expired."""

    code = "invalid_transition"
    http_status = 409

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
        if from_status == "expired":
            self.http_status = 410  # Gone: nothing will ever be done to this task again

    def context(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "from_status": self.from_status,
            "event": self.event,
            "to_status": self.to_status,
        }

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(
            _text(fields, "task_id"),
            _text(fields, "from_status"),
            _text(fields, "event"),
            _optional(fields, "to_status"),
        )


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem with the input: where (a JSON path such as ``$.action.args.amount``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _issues(fields: Mapping[str, Any]) -> list[ValidationIssue]:
    """The ``errors`` member of a problem body, as issues."""
    return [
        ValidationIssue(_text(e, "path", "$"), _text(e, "message", "invalid"))
        for e in fields.get("errors") or ()
        if isinstance(e, Mapping)
    ]


class ValidationError(HandrailError, fallback=True):
    code = "validation_error"
    http_status = 422

    def __init__(self, errors: Iterable[ValidationIssue], summary: str = "invalid input") -> None:
        self.errors: Sequence[ValidationIssue] = tuple(errors)
        listed = "; ".join(str(e) for e in self.errors)
        super().__init__(f"{summary}: {listed}" if listed else summary)

    @classmethod
    def at(cls, path: str, message: str) -> ValidationError:
        return cls([ValidationIssue(path, message)])

    def context(self) -> dict[str, Any]:
        return {"errors": [{"path": e.path, "message": e.message} for e in self.errors]}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_issues(fields) or [ValidationIssue("$", detail)])


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

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        allowed = fields.get("allowed") or ()
        if isinstance(allowed, str | bytes):
            raise TypeError("allowed is a list of decision types")
        error = cls(_text(fields, "task_id"), _text(fields, "decision"), [str(a) for a in allowed])
        error.errors = tuple(_issues(fields)) or error.errors
        return error


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

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        error = cls(_text(fields, "task_id"), _optional(fields, "rule_id"), detail)
        error.errors = tuple(_issues(fields)) or error.errors
        return error


class PermissionDenied(HandrailError, fallback=True):
    code = "permission_denied"
    http_status = 403

    def __init__(self, principal: str, action: str, detail: str | None = None) -> None:
        why = f": {detail}" if detail else ""
        super().__init__(f"{principal} may not {action}{why}")
        self.principal = principal
        self.action = action

    def context(self) -> dict[str, Any]:
        return {"principal": self.principal, "action": self.action}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        principal = _text(fields, "principal", "this API key")
        return cls(principal, _text(fields, "action", "do this"), detail)


class NotAssigned(PermissionDenied):
    code = "not_assigned"

    def __init__(self, task_id: str, worker_id: str) -> None:
        super().__init__(worker_id, f"act on task {task_id}", "it holds no active assignment")
        self.task_id = task_id
        self.worker_id = worker_id

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "worker_id": self.worker_id}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "task_id"), _text(fields, "worker_id"))


class NotEligible(PermissionDenied):
    """The principal may not decide this review: it asked for it, or the policy's rule
    names reviewer groups it is not in; or it may not work on (earn from) this task: it
    created (funds) it, or approved its estimate. The refusal is recorded in the audit log."""

    code = "not_eligible"

    def __init__(
        self, principal: str, task_id: str, reason: str, action: str | None = None
    ) -> None:
        super().__init__(principal, action or f"decide task {task_id}", reason)
        self.task_id = task_id
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {**super().context(), "task_id": self.task_id, "reason": self.reason}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        task_id, reason = _text(fields, "task_id"), _text(fields, "reason")
        error = cls(_text(fields, "principal"), task_id, reason, _text(fields, "action", ""))
        return error


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

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "reason", "invalid"), detail)


class IdempotencyConflict(HandrailError):
    code = "idempotency_conflict"
    http_status = 422

    def __init__(self, key: str, task_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for task {task_id} with a different request"
        )
        self.key = key
        self.task_id = task_id

    def context(self) -> dict[str, Any]:
        return {"idempotency_key": self.key, "task_id": self.task_id}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "idempotency_key"), _text(fields, "task_id"))


class InsufficientFunds(HandrailError):
    code = "insufficient_funds"
    http_status = 402

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

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(
            _text(fields, "account"),
            _text(fields, "currency"),
            int(fields.get("needed") or 0),
            int(fields.get("available") or 0),
        )


class ConcurrencyConflict(HandrailError):
    """A write lost an optimistic-concurrency race. The engine re-reads and retries."""

    code = "concurrency_conflict"
    http_status = 409

    def __init__(self, resource: str, id: str) -> None:
        super().__init__(f"{resource} {id} was changed concurrently")
        self.resource = resource
        self.id = id

    def context(self) -> dict[str, Any]:
        return {"resource": self.resource, "id": self.id}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "resource", "resource"), _text(fields, "id"))


class WaitTimeout(HandrailError, TimeoutError):
    code = "wait_timeout"
    http_status = 408
    wire_names: ClassVar[Mapping[str, str]] = {"status": "task_status"}

    def __init__(self, task_id: str, timeout: float, status: str) -> None:
        super().__init__(f"task {task_id} still {status!r} after {timeout:g}s")
        self.task_id = task_id
        self.timeout = timeout
        self.status = status

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "timeout": self.timeout, "status": self.status}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        timeout = float(fields.get("timeout") or 0)
        return cls(_text(fields, "task_id"), timeout, _text(fields, "status"))


_TOO_LATE = {"submit": "decision", "claim": "claim", "cancel": "cancellation"}


class TaskExpired(InvalidTransition):
    """A decision (or claim, or cancellation: ``event`` names it) that arrived after the
    task's deadline passed with no decision: the task is over, undecided, and nothing was
    recorded. A 410, and an ``InvalidTransition``, so code catching that keeps working."""

    code = "task_expired"
    http_status = 410

    def __init__(self, task_id: str, event: str) -> None:
        what = _TOO_LATE.get(event, "request")
        HandrailError.__init__(
            self,
            f"task {task_id} expired before this {what} arrived (its deadline passed before "
            "anyone decided), so nothing was recorded",
        )
        self.task_id = task_id
        self.from_status = "expired"
        self.event = event
        self.to_status = None
        self.detail = None

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "from_status": self.from_status, "event": self.event}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "task_id"), _text(fields, "event"))


class ReviewExpired(WaitTimeout):
    """A review waited on with ``on_timeout="raise"`` expired (its deadline passed before
    anyone decided): there is no decision, and there will be none. A ``WaitTimeout``, so
    code catching that keeps working; its message says what happened."""

    code = "review_expired"

    def __init__(self, task_id: str, timeout: float) -> None:
        after = f" after {timeout:g}s" if timeout else ""
        HandrailError.__init__(
            self, f"task {task_id} expired{after} before anyone decided: there is no decision"
        )
        self.task_id = task_id
        self.timeout = timeout
        self.status = "expired"

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "timeout": self.timeout, "status": self.status}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        return cls(_text(fields, "task_id"), float(fields.get("timeout") or 0))


class NoAnswer(HandrailError):
    code = "no_answer"
    http_status = 409
    wire_names: ClassVar[Mapping[str, str]] = {"status": "task_status"}

    def __init__(self, task_id: str, status: str, reason: str | None = None) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"task {task_id} ended {status} without a verified answer{why}")
        self.task_id = task_id
        self.status = status
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "status": self.status, "reason": self.reason}

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        task_id, status = _text(fields, "task_id"), _text(fields, "status")
        return cls(task_id, status, _optional(fields, "reason"))


class StoreError(HandrailError, fallback=True):
    code = "store_error"
    http_status = 503
