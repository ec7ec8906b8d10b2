"""The reviewer web UI, served at ``/``: server-rendered pages (Jinja2), a small script
layer of our own (``static/app.js``, no CDN, no inline script), sessions and CSRF.

Security model (docs/ui.md has the long version):

- Sign-in with an API key (reviewer, admin or requester) through a form; the server keeps
  the session (table ``web_sessions``, id stored as a SHA-256) and the browser an
  ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` on https, or per
  ``HANDRAIL_WEB_SECURE_COOKIES``). Every request re-reads the session with its key: a
  revoked key or an expired session signs out at once. Sign-in attempts are rate-limited
  per client address.
- CSRF: every unsafe request carries the session's synchronizer token (form field
  ``csrf_token`` or header ``X-CSRF-Token``) and must not come from another origin.
- Every page gets a Content-Security-Policy without inline script, ``frame-ancestors
  'none'`` and a same-origin referrer policy.
- Decisions go through the engine as the signed-in principal, so the policy decides who
  may do what, exactly as over the API.

Adding a page:

1. A module in ``pages/`` with ``router = APIRouter(route_class=WebRoute,
   include_in_schema=False)``; list it in ``PAGES`` below.
2. Handlers take ``viewer: ViewerDep`` (signed in; POSTs are CSRF-checked by it) and
   ``hub_of(request)``; call the engine with ``viewer.principal``; answer with
   ``render(request, "your.html", {...})``. Engine errors raised from a handler become an
   error page with the right status (404 for another organisation's object).
3. A template ``templates/your.html`` that ``{% extends "base.html" %}`` and fills
   ``{% block main %}``; forms include ``{{ csrf_field() }}``, imported with
   ``{% from "_macros.html" import csrf_field with context %}`` (without ``with context``
   the token is empty and every POST is refused).
4. ``add_nav("Label", "/path", Role.REVIEWER, ...)`` at import to show it in the
   navigation bar for those roles (admins see every entry).
5. Behaviour in ``static/app.js`` hooks onto ``data-*`` attributes; no inline script.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..auth import RateLimiter
from ..settings import Settings
from ._nav import add_nav, nav_for
from ._render import STATIC_DIR, render, static_url
from ._route import WebRoute, error_page
from ._viewer import Viewer, ViewerDep, WebState, current_viewer, hub_of
from .pages import batch, org, queue, signin, task

__all__ = [
    "PAGES",
    "Viewer",
    "ViewerDep",
    "WebRoute",
    "add_nav",
    "current_viewer",
    "error_page",
    "hub_of",
    "install",
    "nav_for",
    "render",
    "static_url",
]

PAGES = (signin, queue, task, batch, org)


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the UI's pages at ``/`` and its assets at ``/static``."""
    app.state.web = WebState(
        signin_limiter=RateLimiter(settings.web_signin_per_second, settings.web_signin_burst)
    )
    for page in PAGES:
        app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
