"""Who is looking at a page: the signed-in session's key, checked on every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from handrail import Principal, Role

from ..access import permit
from ..auth import RateLimiter
from ..hub import Hub
from ..keys import KeyInfo
from ..settings import Settings
from ._nav import NavItem, nav_for
from ._security import UNSAFE, check_origin, check_token, presented_token
from ._sessions import end_session, find_session

__all__ = [
    "COOKIE",
    "SignInRequired",
    "Viewer",
    "ViewerDep",
    "WebState",
    "current_viewer",
    "hub_of",
    "secure_cookie",
    "signed_in",
]

COOKIE = "handrail_session"


@dataclass
class WebState:
    """What the UI keeps in one process: the sign-in rate limiter (per client address)."""

    signin_limiter: RateLimiter


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""

    def __init__(self, clear_cookie: bool = False) -> None:
        super().__init__("sign in first")
        self.clear_cookie = clear_cookie


@dataclass(frozen=True)
class Viewer:
    key: KeyInfo
    principal: Principal
    csrf: str
    session_id: str = field(repr=False)
    nav: list[NavItem] = field(default_factory=list)

    @property
    def is_reviewer(self) -> bool:
        return self.principal.has(Role.REVIEWER)

    @property
    def is_admin(self) -> bool:
        return self.principal.has(Role.ADMIN)


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def secure_cookie(request: Request, settings: Settings) -> bool:
    if settings.web_secure_cookies is not None:
        return settings.web_secure_cookies
    return request.url.scheme == "https"


async def signed_in(hub: Hub, session_id: str) -> bool:
    """Whether the session is still live (for long-lived responses: streams)."""
    now = hub.clock.now()
    found = await hub.store.run(lambda c: find_session(c, session_id, now), readonly=True)
    return found is not None


async def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer (else :class:`SignInRequired`). On unsafe methods, the origin
    and the CSRF token are checked too, so a handler taking a viewer is protected."""
    hub = hub_of(request)
    session_id = request.cookies.get(COOKIE, "")
    if not session_id:
        raise SignInRequired()
    now = hub.clock.now()
    session = await hub.store.run(lambda c: find_session(c, session_id, now), readonly=True)
    if session is None:
        await hub.store.run(lambda c: end_session(c, session_id))
        raise SignInRequired(clear_cookie=True)
    principal = session.key.as_principal()
    viewer = Viewer(session.key, principal, session.csrf, session_id, nav_for(principal))
    request.state.viewer = viewer
    if request.method in UNSAFE:
        check_origin(request, hub.settings.public_url)
        check_token(session.csrf, await presented_token(request))
    permit(request, principal)  # the page's roles, from the one table (access.ROUTES)
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
