"""The package's own Jinja2 templates (emails and decision pages), autoescaped."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = ["render"]

_ENV = Environment(
    loader=PackageLoader("handrail_server.notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, **context: Any) -> str:
    # the decision pages wear the web UI's stylesheet; imported here, as the web package
    # imports the hub, which imports this one
    from ..web._render import static_url  # noqa: PLC0415

    return _ENV.get_template(name).render(static_url=static_url, **context)
