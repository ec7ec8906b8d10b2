"""The lean path for a parked long-poll: ``GET /v1/tasks/{id}/wait``.

A long-poll is parked for up to a minute, and an agent fleet keeps thousands parked, so
what each holds while it waits is the server's memory. Through FastAPI a parked request
holds the whole stack of routing, dependency and exception layers (three exit stacks,
some thirty frames). ``ParkedWaits`` sits just inside the request-id and metrics
middleware and answers the plain form of the request itself, through the route's own
:func:`~handrail_server.routes.waiting.wait_reply`, with the same authentication, the
same problem bodies and the same metrics label. Anything else (another query parameter,
an odd timeout, an id the route would refuse) goes on to the FastAPI route, which answers
exactly as before and documents the endpoint.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from handrail import HandrailError

from .access import permit
from .hub import Hub
from .problems import ApiProblem, api_problem, crash_problem, engine_problem
from .routes.waiting import wait_reply

__all__ = ["ParkedWaits"]

_PATH = re.compile(r"/v1/tasks/([A-Za-z0-9._:-]{1,64})/wait")
_TIMEOUT = re.compile(rb"(?:timeout=([0-9]{1,3}(?:\.[0-9]{1,6})?))?")
ROUTE = "/v1/tasks/{task_id}/wait"


class _Route:
    """What the metrics middleware reads off ``scope["route"]``."""

    path = ROUTE


class ParkedWaits:
    def __init__(self, app: ASGIApp, default_timeout: float = 30.0) -> None:
        self.app = app
        self.default = default_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = _plain_wait(scope, self.default)
        if taken is None:
            await self.app(scope, receive, send)
            return
        task_id, timeout = taken
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
