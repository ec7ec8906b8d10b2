"""Sign-in with an API key, sign-out, and the home page (which sends each role to its
first page)."""

from __future__ import annotations

import math
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from .._render import render
from .._route import WebRoute
from .._security import check_origin, check_token
from .._sessions import end_session, start_session
from .._viewer import COOKIE, ViewerDep, WebState, hub_of, secure_cookie

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PRE_COOKIE = "handrail_signin"  # the sign-in form's own CSRF token (double submit)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _form(request: Request, next_: str, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    hub = hub_of(request)
    response = render(
        request,
        "signin.html",
        {"signin_token": token, "next": next_, "error": error},
        status_code=status,
    )
    response.set_cookie(
        PRE_COOKIE,
        token,
        max_age=3600,
        path="/signin",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, hub.settings),
    )
    return response


@router.get("/signin")
async def signin_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    return _form(request, _safe_next(next))


@router.post("/signin")
async def signin(request: Request) -> Response:
    hub = hub_of(request)
    state: WebState = request.app.state.web
    client = request.client.host if request.client else "unknown"
    wait = state.signin_limiter.take(client)
    form = await request.form()
    next_ = _safe_next(str(form.get("next") or ""))
    if wait:
        retry = str(max(1, math.ceil(wait)))
        response = _form(
            request, next_, f"Too many sign-in attempts: try again in {retry} s.", status=429
        )
        response.headers["Retry-After"] = retry
        return response
    check_origin(request, hub_of(request).settings.public_url)
    presented = form.get("signin_token")
    check_token(
        request.cookies.get(PRE_COOKIE, ""), presented if isinstance(presented, str) else ""
    )
    api_key = str(form.get("api_key") or "").strip()
    now = hub.clock.now()
    lifetime = timedelta(seconds=hub.settings.web_session_seconds)
    made = (
        await hub.store.run(lambda c: start_session(c, api_key, now, lifetime))
        if api_key and len(api_key) <= 200
        else None
    )
    if made is None:
        return _form(request, next_, "That key is unknown or revoked.", status=401)
    response = RedirectResponse(next_, status_code=303)
    response.set_cookie(
        COOKIE,
        made.id,
        max_age=hub.settings.web_session_seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, hub.settings),
    )
    response.delete_cookie(PRE_COOKIE, path="/signin")
    return response


@router.post("/signout")
async def signout(request: Request, viewer: ViewerDep) -> Response:
    hub = hub_of(request)
    await hub.store.run(lambda c: end_session(c, viewer.session_id))
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/")
async def home(request: Request, viewer: ViewerDep) -> Response:
    """The first page the viewer's role has, or a short welcome when none."""
    if viewer.nav:
        return RedirectResponse(viewer.nav[0].path, status_code=303)
    return render(request, "home.html")
