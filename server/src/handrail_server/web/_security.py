"""CSRF defences: the request's origin, and the per-session synchronizer token.

Every unsafe request (POST, PUT, PATCH, DELETE) of a signed-in page must carry the
session's token, in the form field ``csrf_token`` or the ``X-CSRF-Token`` header (for
``fetch``), and must not come from another origin (``Origin``, or ``Sec-Fetch-Site:
cross-site`` from browsers that send it). The session cookie is also ``SameSite=Lax``.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request

from ..problems import ApiProblem

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "UNSAFE", "check_origin", "check_token", "presented_token"]

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def check_origin(request: Request, public_url: str | None = None) -> None:
    """Refuse (403) a request a browser says comes from another site or origin. The
    server's own origin is the one the request names, or ``public_url``'s (behind a proxy
    that terminates TLS or rewrites the host, the browser's origin is that one)."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise ApiProblem(403, "cross_origin", "this request came from another site")
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = {f"{request.url.scheme}://{request.url.netloc}".lower()}
    if public_url:
        public = urlsplit(public_url)
        own.add(f"{public.scheme}://{public.netloc}".lower())
    if origin.strip().lower().rstrip("/") not in own:
        raise ApiProblem(403, "cross_origin", "this request came from another origin")


async def presented_token(request: Request) -> str:
    """The CSRF token a request carries: the header, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header.strip()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def check_token(expected: str, presented: str) -> None:
    """Refuse (403) a missing or wrong token (compared in constant time)."""
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise ApiProblem(
            403, "csrf_failed", "the form is out of date or was not sent by this site: reload"
        )
