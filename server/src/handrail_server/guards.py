"""Input no database can keep: NUL characters (PostgreSQL's text refuses them). They are
refused at the door, as a validation error, instead of failing at the database."""

from __future__ import annotations

import re

from fastapi import Request

from handrail.errors import ValidationError

__all__ = ["refuse_nul"]

# ``\u0000`` in JSON text, not preceded by an escaped backslash (``\\u0000`` is text)
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NO_NUL = "must not contain NUL characters"


async def refuse_nul(request: Request) -> None:
    """A dependency of every route: no NUL in the path, the query or a JSON body."""
    if "\x00" in request.url.path:
        raise ValidationError.at("path", _NO_NUL)
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise ValidationError.at(f"query:{name.replace(chr(0), '')}", _NO_NUL)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    json = kind == "application/json" or kind.endswith("+json")
    if json and _ESCAPED_NUL.search(await request.body()):
        raise ValidationError.at("$", _NO_NUL)
