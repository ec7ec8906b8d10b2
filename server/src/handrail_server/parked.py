"""The lean path for a parked long-poll: ``GET /v1/tasks/{id}/wait``.

A long-poll is parked for up to a minute, and an agent fleet keeps thousands parked, so
what each holds while it waits is the server's memory. Through FastAPI a parked request
holds the whole stack of middleware, routing, dependency and exception layers (three
exit stacks, some thirty frames, a closure per middleware). ``ParkedWaits`` sits in
front of all of them (:class:`~handrail_server.app.HandrailApp` builds its middleware
stack inside it) and answers the plain form of the request itself, in one frame, through
the route's own :func:`~handrail_server.routes.waiting.wait_reply`: with what the
middleware would have done (the request id, the header limits, the metrics under the
route's label), the same authentication, the same route table and the same problem
bodies. Anything else (another query parameter, an odd timeout, an id the route would
refuse) goes on to the full stack, which answers exactly as before and documents the
endpoint.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handrail import HandrailError

from .access import permit
from .guards import refuse_headers
from .hub import Hub
from .metrics import observe
from .problems import ApiProblem, api_problem, crash_problem, engine_problem, stamp_request_id
from .routes.waiting import wait_reply

__all__ = ["ParkedWaits"]

_PATH = re.compile(r"/v1/tasks/([A-Za-z0-9._:-]{1,64})/wait")
_TIMEOUT = re.compile(rb"(?:timeout=([0-9]{1,3}(?:\.[0-9]{1,6})?))?")
ROUTE = "/v1/tasks/{task_id}/wait"


class _Route:
    """What the metrics read off ``scope["route"]``."""

    path = ROUTE


class ParkedWaits:
    def __init__(
        self, app: ASGIApp, *, max_header_bytes: int, max_headers: int, default_timeout: float
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.default = default_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = _plain_wait(scope, self.default)
        if taken is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = stamp_request_id(scope).encode()
        status = 500

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            if await refuse_headers(scope, stamped, self.max_header_bytes, self.max_headers):
                return
            await self._answer(scope, receive, stamped, *taken)
        finally:
            observe(scope, ROUTE, status, started)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, task_id: str, timeout: float
    ) -> None:
        scope["route"] = _Route()
        request = Request(scope, receive)
        hub: Hub = scope["app"].state.hub
        response: JSONResponse
        try:
            principal = await hub.auth.principal(request)
            permit(request, principal)  # the route table holds here too
            session = hub.engine.session(principal, hub.ledger)
            response = JSONResponse(await wait_reply(hub, session, task_id, timeout))
        except HandrailError as exc:
            response = engine_problem(request, exc)
        except ApiProblem as exc:
            response = api_problem(request, exc)
        except Exception as exc:
            response = crash_problem(request, exc)
        await response(scope, receive, send)


def _plain_wait(scope: Scope, default: float) -> tuple[str, float] | None:
    """The task id and timeout of a plain long-poll, or None for anything else."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    found = _PATH.fullmatch(scope["path"])
    if found is None:
        return None
    query: Any = scope.get("query_string", b"")
    given = _TIMEOUT.fullmatch(query)
    if given is None:
        return None
    timeout = float(given.group(1)) if given.group(1) else default
    if not 0 < timeout <= 300:
        return None
    return found.group(1), timeout
