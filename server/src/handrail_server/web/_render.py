"""Templates (Jinja2, autoescaped), static asset URLs, and the headers every page gets."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "render", "secure", "static_url"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@cache
def static_url(name: str) -> str:
    """``/static/<name>?v=<hash of its content>``: cached forever, refreshed on change."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _script_json(value: Any) -> Markup:
    """JSON to put inside ``<script type="application/json">`` (raw text, where entities
    mean nothing): ``<``, ``>`` and ``&`` as JSON escapes, so no ``</script>`` can end the
    element early; safe as it stands."""
    text = json.dumps(value, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


@cache
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    env.filters["script_json"] = _script_json
    return env


def secure(response: Response) -> Response:
    """The page's security headers (CSP without inline script, no framing, no caching of
    signed-in pages)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """``template`` rendered with ``context``, plus what every page uses: the signed-in
    viewer (or None), its CSRF token and navigation, and the request."""
    viewer = getattr(request.state, "viewer", None)
    values: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "csrf_token": viewer.csrf if viewer is not None else "",
        "nav": viewer.nav if viewer is not None else [],
        "path": request.url.path,
    }
    values.update(context or {})
    html = _env().get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)
