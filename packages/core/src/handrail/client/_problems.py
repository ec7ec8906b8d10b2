"""Turning a server's problem-details body (RFC 9457) back into the ``HandrailError``
it stands for.

The error classes rebuild themselves (``HandrailError.from_problem``); what is left here
is HTTP's own: reading the response, the refusals of the API layer that no engine error
stands for (a rejected API key, an Idempotency-Key reused or still in flight, which name
the key this request carried), and a note with the status and the request id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..errors import (
    ConcurrencyConflict,
    HandrailError,
    IdempotencyConflict,
    PermissionDenied,
    ValidationError,
    ValidationIssue,
)

__all__ = ["problem_error"]

_Refusal = Callable[[Mapping[str, Any], str, str | None], HandrailError]


def _unauthenticated(body: Mapping[str, Any], detail: str, key: str | None) -> HandrailError:
    refused = PermissionDenied(
        "this client", "call the API", f"the server refused the API key ({detail})"
    )
    refused.code = "unauthenticated"
    return refused


def _key_reused(body: Mapping[str, Any], detail: str, key: str | None) -> HandrailError:
    error = IdempotencyConflict(key or "", str(body.get("task_id") or ""))
    error.message, error.args = detail, (detail,)
    return error


def _key_in_flight(body: Mapping[str, Any], detail: str, key: str | None) -> HandrailError:
    error = ConcurrencyConflict("request with Idempotency-Key", key or "?")
    error.message, error.args = detail, (detail,)
    return error


def _argument_path(path: str) -> str:
    """A query or path parameter's issue (``query:limit``) named as the argument the
    Python caller passed (``$.limit``), as the in-process session names it."""
    where, sep, name = path.partition(":")
    if sep and where in ("query", "path"):
        return f"$.{name}" if name else "$"
    return path


_API_REFUSALS: dict[str, _Refusal] = {
    "unauthenticated": _unauthenticated,
    "idempotency_key_reused": _key_reused,
    "idempotency_in_flight": _key_in_flight,
}


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
    code = str(body.get("code") or "")
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase or "")
    if not body and response.text:
        detail = f"{detail}: {response.text[:200]}"
    detail = detail or f"HTTP {status}"
    refusal = _API_REFUSALS.get("unauthenticated" if status == 401 else code)
    if refusal is not None:
        error = refusal(body, detail, key)
    else:
        error = HandrailError.from_problem({**body, "code": code, "detail": detail}, status)
        if isinstance(error, IdempotencyConflict) and not error.key:
            error.key = key or ""
        if isinstance(error, ValidationError):
            error.errors = tuple(
                ValidationIssue(_argument_path(e.path), e.message) for e in error.errors
            )
        if not code and type(error) is HandrailError:
            error.code = "server_error" if status >= 500 else "http_error"
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    where = f"{response.request.method} {response.request.url.path}"
    error.add_note(
        f"HTTP {status} from {where}" + (f", request id {request_id}" if request_id else "")
    )
    return error
