"""A dialect's routes: every error leaves in the dialect's own format, never as a 500.

Each dialect has a router whose route class catches what its handlers raise (engine
errors, HTTP problems, request validation) and hands a :class:`Failure` to the dialect's
renderer. A catch-all route answers unknown paths under the dialect's prefix the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match

from handrail import HandrailError
from handrail.errors import StoreError

from ..problems import ApiProblem, http_code, request_issues, status_of

__all__ = ["Failure", "Render", "dialect_router", "failure_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """An error, ready for any dialect to word: the HTTP status, Handrail's stable code,
    a message, where the input was wrong (``errors``: path and message each) and the
    error's other context."""

    status: int
    code: str
    message: str
    errors: list[dict[str, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    request_error: RequestValidationError | None = None
    """The request's own validation error, for dialects that show it as FastAPI does."""


def failure_of(exc: Exception) -> Failure:
    """Any exception as a :class:`Failure` (an unexpected one is logged and becomes 500)."""
    if isinstance(exc, HandrailError):
        context = {k: v for k, v in exc.to_dict().items() if k not in ("code", "message")}
        errors = context.pop("errors", [])
        headers = {"Retry-After": "1"} if isinstance(exc, StoreError) else {}
        return Failure(status_of(exc), exc.code, exc.message, errors, context, headers)
    if isinstance(exc, ApiProblem):
        context = dict(exc.context)
        errors = context.pop("errors", [])
        return Failure(exc.status, exc.code, exc.detail, errors, context, dict(exc.headers))
    if isinstance(exc, RequestValidationError):
        errors = request_issues(exc)
        message = "; ".join(f"{e['path']}: {e['message']}" for e in errors) or "invalid request"
        return Failure(422, "validation_error", message, errors, request_error=exc)
    if isinstance(exc, HTTPException):
        code = http_code(exc.status_code)
        return Failure(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
    log.error("unhandled error in a compat route", exc_info=exc)
    return Failure(500, "internal_error", "something went wrong on our side")


Render = Callable[[Request, Failure], Response]


def dialect_router(prefix: str, tag: str, render: Render) -> APIRouter:
    """A router under ``prefix`` whose errors ``render`` words. Call :func:`close_router`
    after adding its routes, so unknown paths below ``prefix`` answer in the dialect too."""

    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    return render(request, failure_of(exc))

            return guarded

    return APIRouter(prefix=prefix, tags=[tag], route_class=DialectRoute)


def close_router(router: APIRouter, render: Render) -> None:
    """Add the catch-all: 405 for a known path with another method, else 404."""
    siblings = list(router.routes)

    async def unknown(request: Request, rest: str) -> Response:
        scope: Mapping[str, Any] = {**request.scope, "method": "__none__"}
        for route in siblings:
            if route.matches(dict(scope))[0] is Match.PARTIAL:
                return render(request, Failure(405, "method_not_allowed", "Method not allowed"))
        message = f"no such endpoint: {request.method} {request.url.path}"
        return render(request, Failure(404, "not_found", message))

    router.add_api_route(
        "/{rest:path}",
        unknown,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
