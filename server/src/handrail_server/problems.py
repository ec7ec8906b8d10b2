"""Errors as RFC 9457 problem details, and the request id on every response.

Every error leaves as ``application/problem+json``: ``type``, ``title``, ``status``,
``detail``, ``instance``, plus ``code``, ``request_id`` and the error's own context (for
validation errors, ``errors`` with a JSON path each). No traceback ever leaves the server.

An engine error words itself (``HandrailError.to_problem()``: its class carries its status
and code); this module adds only what is HTTP's own: the instance and request id, the
problems FastAPI and Starlette raise (request validation, unknown routes, body limits), the
API's own refusals (``ApiProblem``: 401, 429...) and the last-resort 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handrail import HandrailError
from handrail.errors import StoreError, problem_body
from handrail.ids import new_id
from handrail.validation import json_path

__all__ = [
    "PROBLEM",
    "ApiProblem",
    "CrashGuard",
    "RequestIdMiddleware",
    "api_problem",
    "crash_problem",
    "engine_problem",
    "handrail_problem",
    "http_code",
    "install",
    "problem",
    "problem_body",
    "request_issues",
    "stamp_request_id",
    "status_of",
]

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class ApiProblem(Exception):
    """An HTTP-level problem the engine knows nothing about (401, 413, 429...)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.context = context


def handrail_problem(exc: HandrailError) -> tuple[int, dict[str, Any]]:
    """The status and problem body for an engine error: the error words both itself."""
    return exc.http_status, exc.to_problem()


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> JSONResponse:
    body = problem_body(status, code, detail, **context)
    body.update(instance=request.url.path, request_id=request.scope.get("request_id"))
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=dict(headers or {}))


def status_of(exc: HandrailError) -> int:
    """The HTTP status of an engine error (for pages that show it rather than send it)."""
    return exc.http_status


def request_issues(exc: RequestValidationError) -> list[dict[str, str]]:
    """A request's validation errors, each with where (``$.payout.amount`` in the body,
    ``query:limit``, ``header:idempotency-key``) and what."""
    errors = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        where, rest = (loc[0], loc[1:]) if loc else ("body", ())
        if err.get("type") == "json_invalid":  # loc holds a character offset, not a path
            why = (err.get("ctx") or {}).get("error", "JSON decode error")
            at = f" at character {rest[0]}" if rest else ""
            errors.append({"path": "$", "message": f"not valid JSON: {why}{at}"})
            continue
        path = json_path("$", tuple(p for p in rest if isinstance(p, str | int)))
        if where != "body":  # query:limit, header:idempotency-key, path:task_id
            path = f"{where}:{path.removeprefix('$').removeprefix('.')}"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append({"path": path, "message": message})
    return errors


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def http_code(status: int) -> str:
    """Handrail's stable code for an HTTP error Starlette raised (routing, body limits)."""
    return _HTTP_CODES.get(status, "http_error")


def engine_problem(request: Request, exc: HandrailError) -> JSONResponse:
    """The response for an engine error (a store error asks to come back in a second)."""
    status, body = handrail_problem(exc)
    body.update(instance=request.url.path, request_id=request.scope.get("request_id"))
    headers = {"Retry-After": "1"} if isinstance(exc, StoreError) else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
    return problem(request, exc.status, exc.code, exc.detail, exc.headers, **exc.context)


def crash_problem(request: Request, exc: Exception) -> JSONResponse:
    """A 500 that says nothing of the cause (logged with its stack here)."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    # the request id, should this answer come from outside RequestIdMiddleware
    stamp = {"X-Request-Id": str(request.scope.get("request_id") or new_id())}
    return problem(request, 500, "internal_error", "something went wrong on our side", stamp)


def install(app: FastAPI) -> None:
    @app.exception_handler(HandrailError)
    async def _handrail(request: Request, exc: HandrailError) -> JSONResponse:
        return engine_problem(request, exc)

    @app.exception_handler(ApiProblem)
    async def _api(request: Request, exc: ApiProblem) -> JSONResponse:
        return api_problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = request_issues(exc)
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors) or "invalid request"
        return problem(request, 422, "validation_error", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RecursionError):  # FastAPI could not parse the body
            errors = [{"path": "$", "message": "nested too deeply"}]
            return problem(request, 422, "validation_error", "$: nested too deeply", errors=errors)
        code = http_code(exc.status_code)
        return problem(request, exc.status_code, code, str(exc.detail), exc.headers)


class CrashGuard:
    """The last resort: an exception no handler took becomes the 500 problem, and goes no
    further. Starlette's own last resort (``ServerErrorMiddleware``, where an
    ``Exception`` handler would be installed) answers and then re-raises, and the server
    then closes the connection under the client's next request on it (a keep-alive
    connection reset). An exception after the response was sent is logged and goes no
    further either; one while it is being sent can only end the connection (the server
    closes it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = done = False

        async def watched(message: Message) -> None:
            nonlocal started, done
            await send(message)
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                done = True

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if done:
                log.exception("error after the response on %s", scope.get("path"), exc_info=exc)
                return
            if started:
                raise
            await crash_problem(Request(scope, receive), exc)(scope, receive, send)


def stamp_request_id(scope: Scope) -> str:
    """The request's id, kept in ``scope["request_id"]``: the caller's ``X-Request-Id``
    if it is sane, else a new one."""
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    request_id = given if _SAFE_ID.match(given) else new_id()
    scope["request_id"] = request_id
    return request_id


class RequestIdMiddleware:
    """``X-Request-Id`` on every response: the caller's (if sane) or a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = stamp_request_id(scope)

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, stamped)
