"""Errors in one place: every error class words itself as RFC 9457 problem details
(``to_problem``) and is rebuilt from them (``HandrailError.from_problem``) with its type,
code, status and context, which is all the HTTP client and the server need to agree."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import handrail
from handrail import errors
from handrail.client._problems import problem_error
from handrail.errors import (
    PROBLEM_TYPE_BASE,
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
from handrail.expressions import ExpressionError

for _module in pkgutil.walk_packages(handrail.__path__, "handrail."):
    if not _module.name.endswith("__main__"):  # every error class defined anywhere in core
        importlib.import_module(_module.name)


def _walk(cls: type[HandrailError]) -> Iterator[type[HandrailError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _walk(sub)


_CORE = {c for c in _walk(HandrailError) if c.__module__.split(".")[0] == "handrail"}
CLASSES: list[type[HandrailError]] = [HandrailError, *sorted(_CORE, key=lambda c: c.__name__)]
"""Every error class of ``handrail`` (an adapter's own errors are its own business)."""

EXAMPLES: dict[type[HandrailError], Callable[[], HandrailError]] = {
    HandrailError: lambda: HandrailError("something went wrong"),
    NotFound: lambda: NotFound("task", "t_1"),
    InvalidTransition: lambda: InvalidTransition("t_1", "verified", "cancel", "cancelled"),
    ValidationError: lambda: ValidationError(
        [ValidationIssue("$.sla_seconds", "must be > 0"), ValidationIssue("$.kind", "bad")]
    ),
    DecisionNotAllowed: lambda: DecisionNotAllowed("t_1", "modify", ["approve", "reject"]),
    EditDenied: lambda: EditDenied("t_1", "r_big_refunds", "a refund over 500 is denied"),
    ExpressionError: lambda: ExpressionError("amount >", "expected a value", 8),
    PermissionDenied: lambda: PermissionDenied("acme-agent", "claim tasks", "a requester key"),
    NotAssigned: lambda: NotAssigned("t_1", "w_bob"),
    NotEligible: lambda: NotEligible("alice", "t_1", "alice asked for this review"),
    TokenRejected: lambda: TokenRejected("expired", "the token expired 3 minutes ago"),
    IdempotencyConflict: lambda: IdempotencyConflict("order-42", "t_1"),
    InsufficientFunds: lambda: InsufficientFunds("org:acme:available", "USD", 500, 120),
    ConcurrencyConflict: lambda: ConcurrencyConflict("task", "t_1"),
    WaitTimeout: lambda: WaitTimeout("t_1", 2.5, "in_review"),
    TaskExpired: lambda: TaskExpired("t_1", "submit"),
    ReviewExpired: lambda: ReviewExpired("t_1", 30),
    NoAnswer: lambda: NoAnswer("t_1", "failed", "the reviewers disagreed"),
    StoreError: lambda: StoreError("the database is unavailable"),
}


def _wire(body: dict[str, Any]) -> dict[str, Any]:
    """A body as it arrives: through JSON and back."""
    parsed: dict[str, Any] = json.loads(json.dumps(body))
    return parsed


def test_every_error_class_has_an_example() -> None:
    assert len(CLASSES) >= 17
    missing = [c.__name__ for c in CLASSES if c not in EXAMPLES]
    assert not missing, f"add an example of {missing} to EXAMPLES"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_problem_details_round_trip(cls: type[HandrailError]) -> None:
    error = EXAMPLES[cls]()
    assert type(error) is cls
    body = _wire(error.to_problem())
    assert list(body)[:5] == ["type", "title", "status", "detail", "code"]
    assert body["type"] == PROBLEM_TYPE_BASE + cls.code
    assert body["status"] == cls.http_status and isinstance(body["status"], int)
    assert body["detail"] == error.message and body["code"] == cls.code
    assert body["title"] and body["title"] != "Error"
    for back in (HandrailError.from_problem(body, body["status"]), cls.from_problem(body)):
        assert type(back) is cls
        assert (back.code, back.http_status) == (cls.code, cls.http_status)
        assert back.context() == _wire(error.context())
        assert (back.message, str(back)) == (error.message, error.message)
        assert back.to_problem() == body


def test_an_expired_task_is_gone_and_stays_gone() -> None:
    error = InvalidTransition("t_1", "expired", "decide")
    assert error.http_status == 410 and InvalidTransition.http_status == 409
    back = HandrailError.from_problem(_wire(error.to_problem()), 410)
    assert isinstance(back, InvalidTransition) and back.http_status == 410


def test_the_wire_format_is_pinned() -> None:
    assert json.dumps(NotFound("task", "nope").to_problem()) == json.dumps(
        {
            "type": "https://handrail.dev/problems/not_found",
            "title": "Not found",
            "status": 404,
            "detail": "task 'nope' not found",
            "code": "not_found",
            "resource": "task",
            "id": "nope",
        }
    )
    assert json.dumps(ValidationError.at("$.kind", "bad").to_problem()) == json.dumps(
        {
            "type": "https://handrail.dev/problems/validation_error",
            "title": "Unprocessable content",
            "status": 422,
            "detail": "invalid input: $.kind: bad",
            "code": "validation_error",
            "errors": [{"path": "$.kind", "message": "bad"}],
        }
    )


def test_a_task_status_does_not_take_the_problems_status() -> None:
    # RFC 9457's ``status`` is the HTTP status; the task's own travels as ``task_status``
    for error in (WaitTimeout("t_1", 1.0, "pending"), NoAnswer("t_1", "failed")):
        body = error.to_problem()
        assert (body["status"], body["task_status"]) == (
            error.http_status,
            "pending" if isinstance(error, WaitTimeout) else "failed",
        )
        assert error.to_dict()["status"] == error.status  # the Python view is unchanged


def test_an_unknown_code_is_the_base_class_with_the_message_kept() -> None:
    body = {"type": "about:blank", "status": 418, "detail": "short and stout", "code": "teapot"}
    for error in (HandrailError.from_problem(body, 418), HandrailError.from_problem(body)):
        assert type(error) is HandrailError
        assert (error.code, error.message, str(error)) == (
            "teapot",
            "short and stout",
            "short and stout",
        )
    bare = HandrailError.from_problem({}, 500)
    assert type(bare) is HandrailError and bare.code == "handrail_error" and str(bare)


def test_an_unknown_code_takes_the_class_its_status_stands_for() -> None:
    cases = [
        (403, "forbidden", PermissionDenied),
        (404, "no_such_route", NotFound),
        (422, "invalid_form", ValidationError),
        (503, "maintenance", StoreError),
        (409, "nothing_open", HandrailError),  # several classes answer 409: none is chosen
    ]
    for status, code, cls in cases:
        error = HandrailError.from_problem({"code": code, "detail": "why"}, status)
        assert type(error) is cls, code
        assert (error.code, error.message) == (code, "why")
    invalid = HandrailError.from_problem({"code": "invalid_form", "detail": "reload"}, 422)
    assert isinstance(invalid, ValidationError)
    assert [(e.path, e.message) for e in invalid.errors] == [("$", "reload")]


def test_fields_that_do_not_fit_keep_the_detail() -> None:
    funds = HandrailError.from_problem({"code": "insufficient_funds", "needed": "lots"}, 402)
    assert type(funds) is HandrailError and funds.code == "insufficient_funds"
    decision = {"code": "decision_not_allowed", "detail": "no", "allowed": "approve"}
    refused = HandrailError.from_problem(decision, 422)  # the status's class, then
    assert type(refused) is ValidationError and refused.code == "decision_not_allowed"
    missing = HandrailError.from_problem({"code": "not_found", "detail": "gone"}, 404)
    assert isinstance(missing, NotFound) and (missing.resource, missing.id) == ("resource", "?")


def test_a_class_must_name_a_code_of_its_own() -> None:
    with pytest.raises(TypeError, match="not_found"):

        class Copy(NotFound):
            pass

    with pytest.raises(TypeError, match="fallback"):

        class Another(HandrailError, fallback=True):
            code = "another_404"
            http_status = 404

    stranger = HandrailError.from_problem({"code": "another_404"}, 404)
    assert type(stranger) is NotFound and stranger.code == "another_404"  # not registered


def _depth(cls: type[HandrailError]) -> int:
    if cls is HandrailError:
        return 0
    parent = next(b for b in cls.__bases__ if issubclass(b, HandrailError))
    return 1 + _depth(parent)


def test_the_tree_is_drawn_with_status_and_code() -> None:
    drawing = errors.__doc__ or ""
    for cls in CLASSES:
        drawn = re.compile(rf"^(.*?)\b{cls.__name__} +([0-9]{{3}}) ([a-z_]+) ", re.M)
        (found,) = drawn.findall(drawing)
        lead, status, code = found
        assert (int(status), code) == (cls.http_status, cls.code), cls.__name__
        assert len(lead) == 4 + 4 * _depth(cls), f"{cls.__name__} is drawn at the wrong depth"


# ---------------------------------------------------------------- over HTTP


def _response(status: int, body: Any = None, **more: Any) -> httpx.Response:
    request = httpx.Request("POST", "http://handrail.test/v1/tasks")
    if body is None:
        return httpx.Response(status, request=request, **more)
    return httpx.Response(status, json=body, request=request, **more)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_client_raises_what_the_server_sent(cls: type[HandrailError]) -> None:
    error = EXAMPLES[cls]()
    body = {**error.to_problem(), "instance": "/v1/tasks", "request_id": "req-1"}
    back = problem_error(_response(error.http_status, body))
    assert type(back) is cls
    assert (back.code, back.context(), str(back)) == (cls.code, _wire(error.context()), str(error))
    assert back.__notes__ == [f"HTTP {error.http_status} from POST /v1/tasks, request id req-1"]


def test_the_api_layers_own_refusals() -> None:
    refused = problem_error(_response(401, {"code": "unauthenticated", "detail": "bad key"}))
    assert type(refused) is PermissionDenied and refused.code == "unauthenticated"
    assert "refused the API key (bad key)" in str(refused)
    reused = problem_error(
        _response(422, {"code": "idempotency_key_reused", "detail": "used"}), "k-1"
    )
    assert type(reused) is IdempotencyConflict and (reused.key, str(reused)) == ("k-1", "used")
    running = problem_error(_response(409, {"code": "idempotency_in_flight", "detail": "wait"}))
    assert type(running) is ConcurrencyConflict and running.code == "concurrency_conflict"
    keyless = problem_error(_response(422, {"code": "idempotency_conflict", "task_id": "t"}), "k")
    assert isinstance(keyless, IdempotencyConflict) and keyless.key == "k"


def test_a_response_that_is_not_a_problem() -> None:
    crashed = problem_error(_response(502, content=b"<html>bad gateway</html>"))
    assert type(crashed) is HandrailError and crashed.code == "server_error"
    assert "bad gateway" in str(crashed)
    odd = problem_error(_response(404, content=b""))
    assert type(odd) is NotFound and odd.code == "not_found"
