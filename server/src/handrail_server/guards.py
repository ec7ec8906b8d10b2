"""Input refused at the door, before any database sees it.

- :func:`check_input` (a dependency of every route): JSON that Python's parser takes but
  JSON does not (``NaN``, ``Infinity``), numbers no 64-bit float can hold (``1e400``,
  which Python reads as an infinity that no response can then carry), text no database
  can keep or no client can read back (NUL characters, which PostgreSQL's text refuses;
  lone UTF-16 surrogates, which cannot be encoded as UTF-8), and nesting too deep to
  walk. Each is a validation error (422) with the JSON path where it was found, never a
  500 after the write or a 503 from the database.
- :class:`BodyLimitMiddleware`: request bodies over a size limit are refused with 413
  before they are read in full (a multipart upload gets its own, larger limit).
- :class:`HeaderLimitMiddleware`: more headers than allowed, or more bytes of them, are
  refused with 431 (``handrail serve`` also cuts off a head too long to hold: see
  :mod:`handrail_server.protocol`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handrail.errors import ValidationError
from handrail.validation import json_path

from .problems import PROBLEM, problem_body

__all__ = [
    "BodyLimitMiddleware",
    "HeaderLimitMiddleware",
    "check_input",
    "checked_json",
    "header_problem",
    "refuse_headers",
]

_NO_NUL = "must not contain NUL characters"
_NO_SURROGATE = "must be valid Unicode (a lone UTF-16 surrogate is not)"


class _Refused(Exception):
    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message


class _NotFinite:
    """A number that is no finite float, as written: found by the walk, which knows where."""

    def __init__(self, text: str) -> None:
        self.text = text

    def message(self) -> str:
        if self.text.lstrip("-") in ("NaN", "Infinity"):
            return f"{self.text} is not a JSON number: numbers must be finite"
        shown = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"{shown} is out of range: numbers must be finite (a 64-bit float)"


def _constant(name: str) -> _NotFinite:
    return _NotFinite(name)


def _float(text: str) -> float | _NotFinite:
    number = float(text)
    return number if math.isfinite(number) else _NotFinite(text)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return _NO_NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _NO_SURROGATE
    return None


def _walk(value: Any, path: tuple[str | int, ...]) -> None:
    """Every string (keys too) in a parsed JSON document, iteratively (no recursion)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, _NotFinite):
            raise _Refused(json_path("$", at), item.message())
        if isinstance(item, str):
            why = _text_problem(item)
            if why:
                raise _Refused(json_path("$", at), why)
        elif isinstance(item, dict):
            for key, inner in item.items():
                why = _text_problem(key)
                if why:
                    raise _Refused(json_path("$", at), f"a key {why}")
                stack.append((inner, (*at, key)))
        elif isinstance(item, list):
            stack.extend((inner, (*at, i)) for i, inner in enumerate(item))


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


async def check_input(request: Request) -> None:
    """A dependency of every route: the path, the query and a JSON body hold only what
    JSON and the databases can carry."""
    if "\x00" in request.url.path:
        raise ValidationError.at("path", _NO_NUL)
    for name, value in request.query_params.multi_items():
        why = _text_problem(name) or _text_problem(value)
        if why:
            raise ValidationError.at(f"query:{name.replace(chr(0), '')}", why)
    await checked_json(request)


async def checked_json(request: Request) -> Any:
    """A JSON body, parsed and checked as :func:`check_input` checks it (which calls this):
    the document, or None for no body, another content type, or bytes that are not JSON
    (the route's own parsing says where)."""
    if not _is_json(request):
        return None
    body = await request.body()  # kept by the request: the route reads the same bytes
    if not body:
        return None
    try:
        parsed = json.loads(body, parse_constant=_constant, parse_float=_float)
        _walk(parsed, ())
    except _Refused as refused:
        raise ValidationError.at(refused.path, refused.message) from None
    except RecursionError:
        raise ValidationError.at("$", "nested too deeply") from None
    except ValueError:
        return None
    return parsed


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes (``upload_limit`` for multipart), from
    its ``Content-Length`` at once, or as soon as a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        limit = self.upload_limit if kind == b"multipart/form-data" else self.limit
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _too_large(scope, send, limit)


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions from body reading through to
    its handler (a 413 problem); one that escapes the app is answered here."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    detail = f"the request body is over {limit} bytes"
    problem = problem_body(413, "too_large", detail, limit=limit)
    problem.update(instance=scope.get("path"), request_id=scope.get("request_id"))
    body = json.dumps(problem).encode()
    await _close_with(send, 413, body)


async def _close_with(send: Send, status: int, body: bytes) -> None:
    """A problem answered before the app reads the request, and the connection closed."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header_problem(detail: str, path: str | None, request_id: str | None, **context: Any) -> bytes:
    """The body of a 431 problem."""
    problem = problem_body(431, "headers_too_large", detail, **context)
    problem.update(instance=path, request_id=request_id)
    return json.dumps(problem).encode()


def header_excess(headers: list[tuple[bytes, bytes]], max_bytes: int, max_count: int) -> str | None:
    """Why these headers are too many or too large, or None."""
    if len(headers) > max_count:
        return f"the request has {len(headers)} headers; at most {max_count} are allowed"
    size = sum(len(name) + len(value) + 4 for name, value in headers)  # "name: value\r\n"
    if size > max_bytes:
        return f"the request's headers are {size} bytes; at most {max_bytes} are allowed"
    return None


class HeaderLimitMiddleware:
    """431 for a request with more than ``max_count`` headers or more than ``max_bytes``
    of them, before anything else reads them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_count: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not await refuse_headers(scope, send, self.max_bytes, self.max_count):
            await self.app(scope, receive, send)


async def refuse_headers(scope: Scope, send: Send, max_bytes: int, max_count: int) -> bool:
    """Answer 431 if the request's headers are too many or too large (and say so)."""
    why = header_excess(scope["headers"], max_bytes, max_count)
    if why is None:
        return False
    limits = {"max_header_bytes": max_bytes, "max_headers": max_count}
    body = header_problem(why, scope.get("path"), scope.get("request_id"), **limits)
    await _close_with(send, 431, body)
    return True
