"""Turning a server's problem-details body (RFC 9457) back into the ``HandrailError``
it stands for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import (
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
    StoreError,
    TokenRejected,
    ValidationError,
    ValidationIssue,
    WaitTimeout,
)

__all__ = ["problem_error"]


def _text(body: Mapping[str, Any], name: str, default: str = "") -> str:
    value = body.get(name)
    return default if value is None else str(value)


def _typed(
    status: int, code: str, detail: str, body: Mapping[str, Any], key: str | None
) -> HandrailError | None:
    """The engine's error for a problem body, or None when the code names none."""
    if status == 401 or code == "unauthenticated":
        refused = PermissionDenied(
            "this client", "call the API", f"the server refused the API key ({detail})"
        )
        refused.code = "unauthenticated"
        return refused
    if code == "not_found":
        return NotFound(_text(body, "resource", "resource"), _text(body, "id", "?"))
    if code == "invalid_transition":
        return InvalidTransition(
            _text(body, "task_id"),
            _text(body, "from_status"),
            _text(body, "event"),
            body.get("to_status"),
        )
    if code == "not_eligible":
        return NotEligible(_text(body, "principal"), _text(body, "task_id"), _text(body, "reason"))
    if code == "token_rejected":
        return TokenRejected(_text(body, "reason", "invalid"), detail)
    if code == "edit_denied":
        rule = body.get("rule_id")
        return EditDenied(_text(body, "task_id"), str(rule) if rule else None, detail)
    if code in ("validation_error", "decision_not_allowed"):
        issues = [
            ValidationIssue(_text(e, "path", "$"), _text(e, "message", "invalid"))
            for e in body.get("errors") or ()
            if isinstance(e, Mapping)
        ]
        if code == "decision_not_allowed":
            error = DecisionNotAllowed(
                _text(body, "task_id"), _text(body, "decision"), list(body.get("allowed") or ())
            )
            if issues:
                error.errors = tuple(issues)
            return error
        return ValidationError(issues or [ValidationIssue("$", detail)])
    if code == "not_assigned":
        return NotAssigned(_text(body, "task_id"), _text(body, "worker_id"))
    if code in ("permission_denied", "forbidden") or status == 403:
        return PermissionDenied(
            _text(body, "principal", "this API key"), _text(body, "action", "do this"), detail
        )
    if code == "idempotency_conflict":
        return IdempotencyConflict(
            _text(body, "idempotency_key", key or ""), _text(body, "task_id")
        )
    if code == "idempotency_key_reused":
        return IdempotencyConflict(key or "", _text(body, "task_id"))
    if code == "insufficient_funds":
        return InsufficientFunds(
            _text(body, "account"),
            _text(body, "currency"),
            int(body.get("needed") or 0),
            int(body.get("available") or 0),
        )
    if code == "concurrency_conflict":
        return ConcurrencyConflict(_text(body, "resource", "resource"), _text(body, "id"))
    if code == "idempotency_in_flight":
        return ConcurrencyConflict("request with Idempotency-Key", key or "?")
    if code == "store_error":
        return StoreError(detail)
    if code == "wait_timeout":
        return WaitTimeout(
            _text(body, "task_id"), float(body.get("timeout") or 0), _text(body, "status")
        )
    if code == "no_answer":
        return NoAnswer(_text(body, "task_id"), _text(body, "status"), body.get("reason"))
    return None


def problem_error(response: httpx.Response, key: str | None = None) -> HandrailError:
    """The ``HandrailError`` an error response stands for (``key``: the Idempotency-Key
    the request carried). Its message is the problem's ``detail``; a note names the status
    and the request id."""
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body: Mapping[str, Any] = parsed if isinstance(parsed, Mapping) else {}
    status = response.status_code
    code = _text(body, "code")
    detail = _text(body, "detail") or _text(body, "title") or response.reason_phrase
    if not body and response.text:
        detail = f"{detail}: {response.text[:200]}"
    try:
        error = _typed(status, code, detail, body, key)
    except (TypeError, ValueError):  # a body that does not fit the code: keep the detail
        error = None
    if isinstance(error, HandrailError):
        if not (status == 401 or code == "unauthenticated"):
            error.message = detail
            error.args = (detail,)
    else:
        error = HandrailError(detail or f"HTTP {status}")
        error.code = code or ("server_error" if status >= 500 else "http_error")
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    where = f"{response.request.method} {response.request.url.path}"
    error.add_note(
        f"HTTP {status} from {where}" + (f", request id {request_id}" if request_id else "")
    )
    return error
