"""The client's wire to a Handrail server: one API key, requests retried and mapped to
errors. :class:`~handrail.client.HttpSession` (``_http_session``) runs the operations over it.

Every call is one logical request:

- **Retries.** Connection failures, 429, 502, 503 and 504 are retried (500 too, and
  failures after the request went out, when repeating the request is harmless: reads, and
  writes the server deduplicates by ``Idempotency-Key``), with exponential backoff and full
  jitter, never sooner than the server's ``Retry-After``.
- **Idempotency.** Every POST carries one ``Idempotency-Key``, made once per logical call
  and sent again on each of its retries, so a retried create or decision happens once.
- **Errors.** A problem-details body (RFC 9457) becomes the matching ``HandrailError``
  (``_problems.problem_error``): 404 ``NotFound``, 422 ``ValidationError`` with each JSON
  path, 409 ``InvalidTransition``, 402 ``InsufficientFunds``...
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import httpx
from pydantic_core import to_jsonable_python

from ..errors import (
    HandrailError,
)
from ._problems import problem_error
from ._retry_policy import RetryPolicy

__all__ = ["LONG_POLL", "MARGIN", "NO_BODY", "TRANSIENT", "Connection", "RetryPolicy", "query"]

LONG_POLL: Final = 60.0
"""The longest single long-poll: the server honours up to 60 s."""
MARGIN: Final = 15.0  # read timeout beyond a long-poll's own length
_RETRY_STATUS: Final = frozenset({429, 502, 503, 504})
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # nothing went out
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
NO_BODY: Final = object()

try:
    _USER_AGENT = f"handrail-python/{version('handrail-core')} httpx/{httpx.__version__}"
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _USER_AGENT = f"handrail-python httpx/{httpx.__version__}"


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


# ---------------------------------------------------------------- helpers


def _json(value: Any) -> Any:
    return to_jsonable_python(value)


def _value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def query(**values: Any) -> dict[str, Any]:
    """Query parameters, leaving out the ones not given."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            out[name] = [str(_value(v)) for v in value]
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(_value(value))
    return out


# ---------------------------------------------------------------- the connection


class Connection:
    """A Handrail server at ``url``, spoken to with ``api_key``.

    The ``httpx.AsyncClient`` is made on first use, on the loop that uses it (the client's
    portal); :meth:`aclose` closes it. ``timeout`` bounds each ordinary request; long-polls
    get their own length plus a margin. ``transport`` replaces the network (tests).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        long_poll: float = LONG_POLL,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the server URL must start with http:// or https://, not {url!r}")
        if not api_key or not api_key.strip():
            raise ValueError("an API key is needed (hr_live_... or hr_test_...)")
        if not 0 < long_poll <= LONG_POLL:
            raise ValueError(f"long_poll must be more than 0 and at most {LONG_POLL:g} seconds")
        self.url = url.rstrip("/")
        self._api_key = api_key.strip()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.long_poll = long_poll
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Connection({self.url!r}, api_key={self._api_key[:12]!r}...)"

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise RuntimeError("this Handrail client is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url,
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Accept": "application/json",
                    "User-Agent": _USER_AGENT,
                },
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = NO_BODY,
        key: str | None = None,
        deduplicated: bool = False,
        read_timeout: float | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One logical request, retried as :class:`RetryPolicy` says. A POST carries
        ``key`` (default: a new one) as its ``Idempotency-Key`` on every attempt.
        ``deduplicated``: the server runs a POST with a given key at most once, so it is as
        safe to repeat as a GET."""
        client = self._http()
        headers: dict[str, str] = {}
        if method == "POST":
            key = key or uuid.uuid4().hex
            headers["Idempotency-Key"] = key
        repeatable = method in ("GET", "HEAD") or deduplicated
        timeout = (
            httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0), read=read_timeout)
            if read_timeout is not None
            else httpx.USE_CLIENT_DEFAULT
        )
        policy = self.retry
        retry = 0
        while True:
            request = client.build_request(
                method,
                path,
                params=params,
                json=None if body is NO_BODY else _json(body),
                headers=headers,
                timeout=timeout,
            )
            try:
                response = await client.send(request, stream=stream)
            except TRANSIENT as exc:
                may_retry = repeatable or isinstance(exc, _UNSENT)
                if not may_retry or retry + 1 >= policy.max_attempts:
                    error = HandrailError(
                        f"could not reach the Handrail server at {self.url}: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    error.code = "connection_error"
                    raise error from exc
                await asyncio.sleep(policy.backoff(retry))
                retry += 1
                continue
            if response.is_success:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            delay = self._delay(response, repeatable, retry)
            if delay is None:
                raise problem_error(response, key)
            await asyncio.sleep(delay)
            retry += 1

    def _delay(self, response: httpx.Response, repeatable: bool, retry: int) -> float | None:
        """How long to wait before trying ``response``'s request again, or None not to."""
        policy = self.retry
        if retry + 1 >= policy.max_attempts:
            return None
        status = response.status_code
        worth = status in _RETRY_STATUS or (status == 500 and repeatable)
        if status == 409:  # the same key is still running: its outcome is worth waiting for
            with contextlib.suppress(ValueError):
                body = response.json()
                worth = isinstance(body, Mapping) and body.get("code") == "idempotency_in_flight"
        if not worth:
            return None
        pause = policy.backoff(retry)
        told = _retry_after(response)
        if told is not None:
            if told > policy.max_retry_after:
                return None
            pause = max(pause, told)
        return pause

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = NO_BODY,
        key: str | None = None,
        deduplicated: bool = False,
        read_timeout: float | None = None,
    ) -> Any:
        response = await self.send(
            method,
            path,
            params=params,
            body=body,
            key=key,
            deduplicated=deduplicated,
            read_timeout=read_timeout,
        )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise HandrailError(
                f"the server answered {method} {path} with something other than JSON"
            ) from exc

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=query(**params))

    async def post(
        self, path: str, body: Any = NO_BODY, *, key: str | None = None, dedup: bool = False
    ) -> Any:
        return await self.call("POST", path, body=body, key=key, deduplicated=dedup)
