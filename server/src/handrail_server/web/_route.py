"""``WebRoute``: the route class of every UI page. It turns what a page can raise into an
HTML answer (never JSON, never a 500 with a traceback) and adds the security headers:

- no live session: a redirect to the sign-in form (and back here after);
- an engine error (``HandrailError``) or an HTTP problem (``ApiProblem``): the error page
  with the right status (another organisation's task is a plain 404);
- invalid path or query parameters: a 422 error page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from handrail import HandrailError

from ..problems import ApiProblem, request_issues, status_of
from ._render import render, secure
from ._viewer import COOKIE, SignInRequired

__all__ = ["WebRoute", "error_page"]

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    422: "Invalid input",
    429: "Too many attempts",
    503: "Unavailable",
}


def error_page(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    title = _TITLES.get(status, "Something went wrong")
    context = {"status": status, "title": title, "detail": detail}
    return render(request, "error.html", context, status_code=status, headers=headers)


def _signin(request: Request, clear: bool) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    where = "/signin" if request.method != "GET" else f"/signin?next={quote(target, safe='')}"
    response = RedirectResponse(where, status_code=303)
    if clear:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = _signin(request, exc.clear_cookie)
            except HandrailError as exc:
                status = status_of(exc)
                if status >= 500:
                    log.warning("engine error on %s: %s", request.url.path, exc)
                response = error_page(request, status, exc.message)
            except ApiProblem as exc:
                response = error_page(request, exc.status, exc.detail, exc.headers)
            except RequestValidationError as exc:
                issues = request_issues(exc)
                detail = "; ".join(f"{i['path']}: {i['message']}" for i in issues)
                response = error_page(request, 422, detail or "invalid request")
            return secure(response)

        return run
