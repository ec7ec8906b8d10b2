"""What the ``/org`` pages share: role checks, form fields, money as text, page links."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData

from handrail import Role
from handrail.errors import ValidationError
from handrail.money import Currency

from ....auth import require
from ..._viewer import Viewer

__all__ = [
    "MAX_JSON",
    "MAX_TEXT",
    "json_field",
    "link",
    "money_text",
    "need",
    "notice",
    "text_field",
]

MAX_TEXT = 10_000
MAX_JSON = 512 * 1024

_NOTICES = {
    "cancelled": "The task was cancelled.",
    "disputed": "The dispute was opened; an admin resolves it.",
    "verified": "The task was verified.",
    "failed": "The task was failed.",
    "upheld": "The dispute was resolved: the result stands.",
    "overturned": "The dispute was resolved: the task failed.",
}


def need(viewer: Viewer, role: Role) -> None:
    """403 unless the viewer has ``role`` (admins have every role)."""
    require(viewer.principal, role)


def notice(done: str | None) -> str | None:
    """The message for ``?done=<what>`` after an action (only the known ones)."""
    return _NOTICES.get(done or "")


def text_field(form: FormData, name: str, limit: int = MAX_TEXT) -> str:
    """A text field, stripped; too long is a 422."""
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise ValidationError.at(f"$.{name}", f"is longer than {limit} characters")
    return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_field(form: FormData, name: str) -> Any:
    """A field holding JSON, parsed (NaN and infinities refused); 422 when it is not."""
    text = text_field(form, name, MAX_JSON)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ValidationError.at(f"$.{name}", f"is not valid JSON: {exc}") from None


def money_text(minor: int, currency: Currency) -> str:
    """Integer minor units as money: ``-1250`` USD is ``-12.50 USD``."""
    exp = currency.exponent
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    digits = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
    return f"{sign}{digits} {currency.value}"


def link(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as its query."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")}, doseq=True)
    return f"{path}?{query}" if query else path
