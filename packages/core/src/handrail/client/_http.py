"""The client over HTTP: a :class:`Backend` that talks to a Handrail server.

``Handrail(url, api_key)`` holds one of these. Every call is one logical request:

- **Retries.** Connection failures, 429, 502, 503 and 504 are retried (500 too, and
  failures after the request went out, when repeating the request is harmless: reads, and
  writes the server deduplicates by ``Idempotency-Key``), with exponential backoff and full
  jitter, never sooner than the server's ``Retry-After``.
- **Idempotency.** Every POST carries one ``Idempotency-Key``, made once per logical call
  and sent again on each of its retries, so a retried create or decision happens once.
- **Errors.** A problem-details body (RFC 9457) becomes the matching ``HandrailError``:
  404 ``NotFound``, 422 ``ValidationError`` with each JSON path, 409 ``InvalidTransition``,
  402 ``InsufficientFunds``...
- **Waiting.** ``wait`` holds long-polls open until the task ends; ``wait_for_work`` long-
  polls the queue and, when only skipped tasks are queued, listens to the organisation's
  event stream (SSE). Nothing sleeps and asks again.

The API key decides who acts, so ``as_reviewer`` cannot work here: hold a second client
with a reviewer's key instead.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import email.utils
import math
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic_core import to_jsonable_python

from ..audit import AuditEntry, ChainReport
from ..errors import (
    HandrailError,
    NotFound,
    TokenRejected,
    ValidationError,
    WaitTimeout,
)
from ..ledger import (
    Account,
    AccountKind,
    Balance,
    Earnings,
    EntryPage,
    EntryRecord,
    PayoutRecord,
    Posting,
)
from ..lifecycle import Status
from ..models import Decision, DecisionType, Kind, Page, RiskTier, Task, TaskEvent, TaskSpec
from ..money import Currency, Money
from ..policy import Explanation, Policy, ReviewerGroup, StandingApproval
from ..tokens import TokenClaims, peek_task
from ._backend import opened
from ._problems import problem_error

__all__ = ["HttpBackend", "RetryPolicy"]

LONG_POLL: Final = 60.0
"""The longest single long-poll: the server honours up to 60 s."""
_MARGIN: Final = 15.0  # read timeout beyond a long-poll's own length
_RETRY_STATUS: Final = frozenset({429, 502, 503, 504})
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # nothing went out
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_NO_BODY: Final = object()

try:
    _USER_AGENT = f"handrail-python/{version('handrail-core')} httpx/{httpx.__version__}"
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _USER_AGENT = f"handrail-python httpx/{httpx.__version__}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a request is retried: up to ``max_attempts`` tries in all, the ``n``-th retry
    after a random pause of up to ``min(cap, base × 2ⁿ)`` seconds (full jitter), and never
    sooner than ``Retry-After``. A ``Retry-After`` over ``max_retry_after`` seconds is not
    waited for: the error is raised."""

    max_attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_retry_after < 0:
            raise ValueError("retry delays must not be negative")

    def backoff(self, retry: int) -> float:
        """The pause before retry number ``retry`` (0 for the first)."""
        return random.uniform(0, min(self.cap, self.base * 2.0 ** min(retry, 60)))


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


def _params(**values: Any) -> dict[str, Any]:
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


def _task(data: Any) -> Task:
    return Task.model_validate(data)


def _tasks(data: Any) -> builtins.list[Task]:
    return [_task(t) for t in data["data"]]


class _Changes:
    """Wakes its waiter at each event on an open SSE stream (keepalive comments aside)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._seen = asyncio.Event()
        self.ended = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for line in self._response.aiter_lines():
                if line.startswith("data:"):
                    self._seen.set()
        except httpx.HTTPError:
            pass
        finally:
            self.ended = True
            self._seen.set()

    async def wait(self, timeout: float) -> bool:
        """True after an event (or the stream's end), False after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._seen.wait(), timeout)
        except TimeoutError:
            return False
        self._seen.clear()
        return True

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._response.aclose()


# ---------------------------------------------------------------- the backend


class HttpBackend:
    """A Handrail server at ``url``, acting as whoever ``api_key`` belongs to.

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
        self._me: str | None = None
        self._org: str | None = None

    def __repr__(self) -> str:
        return f"HttpBackend({self.url!r}, api_key={self._api_key[:12]!r}...)"

    # ------------------------------------------------------------ plumbing

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

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = _NO_BODY,
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
                json=None if body is _NO_BODY else _json(body),
                headers=headers,
                timeout=timeout,
            )
            try:
                response = await client.send(request, stream=stream)
            except _TRANSIENT as exc:
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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = _NO_BODY,
        key: str | None = None,
        deduplicated: bool = False,
        read_timeout: float | None = None,
    ) -> Any:
        response = await self._send(
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

    async def _get(self, path: str, **params: Any) -> Any:
        return await self._call("GET", path, params=_params(**params))

    async def _post(
        self, path: str, body: Any = _NO_BODY, *, key: str | None = None, dedup: bool = False
    ) -> Any:
        return await self._call("POST", path, body=body, key=key, deduplicated=dedup)

    async def _move(self, task_id: str, action: str, body: Any = _NO_BODY) -> Task:
        return _task(await self._post(f"/v1/tasks/{_seg(task_id)}/{action}", body))

    @contextlib.asynccontextmanager
    async def _changes(self) -> AsyncIterator[_Changes]:
        """The organisation's event stream from now on (the start is fixed when the
        response begins, so nothing after that is missed)."""
        response = await self._send(
            "GET",
            "/v1/events",
            stream=True,
            read_timeout=max(self.timeout, 60.0),  # a keepalive comes every 15 s
        )
        changes = _Changes(response)
        try:
            yield changes
        finally:
            await changes.aclose()

    async def open_events(self, after: int | None = None) -> AsyncGenerator[TaskEvent, None]:
        """The organisation's event stream (``GET /v1/events``, SSE) after sequence number
        ``after`` (None: from now on, fixed when this returns), one ``TaskEvent`` per
        history entry, in order.

        It ends when the connection does: a dropped connection raises ``HandrailError``
        (``code == "connection_error"``), a stream the server closes just ends. Continue
        from the last event's ``seq`` to resume without a gap."""
        return await opened(self._events(after))

    async def _events(self, after: int | None) -> AsyncGenerator[TaskEvent | None, None]:
        response = await self._send(
            "GET",
            "/v1/events",
            params={} if after is None else {"after": after},
            stream=True,
            read_timeout=max(self.timeout, 60.0),  # a keepalive comes every 15 s
        )
        try:
            yield None  # open: the server has fixed the position
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:  # a blank line ends a frame
                    yield TaskEvent.model_validate_json("\n".join(data))
                    data = []
        except _TRANSIENT as exc:
            error = HandrailError(
                f"the event stream from {self.url} broke off: {type(exc).__name__}: {exc}"
            )
            error.code = "connection_error"
            raise error from exc
        finally:
            await response.aclose()

    async def whoami(self) -> tuple[str, str]:
        """The organisation and principal the API key acts as (asked once)."""
        if self._me is None or self._org is None:
            earnings = await self._get("/v1/earnings")
            balance = await self._get("/v1/balance")
            self._me, self._org = str(earnings["worker_id"]), str(balance["org_id"])
        return self._org, self._me

    # ------------------------------------------------------------ identity

    @property
    def principal_id(self) -> str:
        """Who the key acts as, once :meth:`whoami` found out; ``"api-key"`` until then."""
        return self._me or "api-key"

    def as_reviewer(self, reviewer_id: str) -> HttpBackend:
        raise NotImplementedError(
            "over HTTP the API key decides who acts, so a client cannot act as reviewer "
            f"{reviewer_id!r}: make a Handrail(url, api_key=...) with that reviewer's key"
        )

    # ------------------------------------------------------------ requester

    async def create(self, spec: TaskSpec | Mapping[str, Any]) -> Task:
        return _task(await self._post("/v1/tasks", spec, dedup=True))

    async def get(self, task_id: str) -> Task:
        return _task(await self._get(f"/v1/tasks/{_seg(task_id)}"))

    async def list(
        self,
        *,
        status: Status | str | builtins.list[Status | str] | None = None,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        batch_id: str | None = None,
        after: str | None = None,
        limit: int = 50,
        newest_first: bool = False,
    ) -> Page:
        statuses = status if isinstance(status, list | tuple) or status is None else [status]
        data = await self._get(
            "/v1/tasks",
            status=statuses,
            kind=kind,
            task_type=task_type,
            batch_id=batch_id,
            after=after,
            limit=limit,
            order="desc" if newest_first else "asc",
        )
        return Page(items=tuple(_tasks(data)), next_cursor=data.get("next_cursor"))

    async def history(self, task_id: str) -> builtins.list[TaskEvent]:
        data = await self._get(f"/v1/tasks/{_seg(task_id)}/history")
        return [TaskEvent.model_validate(e) for e in data["data"]]

    async def cancel(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "cancel", {"reason": reason})

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Long-polls (each at most ``long_poll`` seconds and the time left) until the task
        is terminal; ``WaitTimeout`` once ``timeout`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        path = f"/v1/tasks/{_seg(task_id)}/wait"
        task: Task | None = None
        while True:
            left = math.inf if deadline is None else deadline - loop.time()
            if left <= 0:
                task = task or await self.get(task_id)
                if task.terminal:
                    return task
                raise WaitTimeout(task_id, timeout or 0.0, task.status.value)
            poll = max(min(self.long_poll, left), 0.001)
            data = await self._call(
                "GET", path, params={"timeout": f"{poll:.3f}"}, read_timeout=poll + _MARGIN
            )
            task = _task(data)
            if task.terminal:
                return task

    async def approve_estimate(self, task_id: str) -> Task:
        return await self._move(task_id, "estimate/approve")

    async def reject_estimate(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "estimate/reject", {"reason": reason})

    async def dispute(self, task_id: str, reason: str) -> Task:
        return await self._move(task_id, "dispute", {"reason": reason})

    # ------------------------------------------------------------ reviewer

    async def queue(
        self,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
    ) -> builtins.list[Task]:
        data = await self._get(
            "/v1/queue", kind=kind, task_type=task_type, risk_tier=risk_tier, limit=limit
        )
        return _tasks(data)

    async def wait_for_work(
        self,
        timeout: float | None = None,
        *,
        kind: Kind | str | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | str | None = None,
        limit: int = 50,
        skip: Collection[str] = (),
    ) -> builtins.list[Task]:
        """The queue, less ``skip``, as soon as that is not empty; ``[]`` after ``timeout``.

        Long-polls ``/v1/queue?wait=``. The server answers at once while anything is
        queued, so when everything queued is in ``skip`` this listens to the
        organisation's event stream instead and looks again at each change."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        filters: dict[str, Any] = {
            "kind": kind,
            "task_type": task_type,
            "risk_tier": risk_tier,
            "limit": limit,
        }

        def left() -> float:
            return math.inf if deadline is None else deadline - loop.time()

        while True:
            poll = max(min(self.long_poll, left()), 0.0)
            data = await self._call(
                "GET",
                "/v1/queue",
                params={**_params(**filters), "wait": f"{poll:.3f}"},
                read_timeout=poll + _MARGIN,
            )
            found = _tasks(data)
            fresh = [t for t in found if t.id not in skip]
            if fresh:
                return fresh
            if left() <= 0:
                return []
            if not found:
                continue  # the long-poll ran its course: hold another
            async with self._changes() as changes:  # only skipped tasks are queued
                while True:
                    fresh = [t for t in await self.queue(**filters) if t.id not in skip]
                    if fresh:
                        return fresh
                    pause = min(left(), LONG_POLL)
                    if pause <= 0:
                        return []
                    await changes.wait(pause)
                    if changes.ended:
                        break  # the stream closed: start over

    async def claim(self, task_id: str) -> Task:
        return await self._move(task_id, "claim")

    async def release(self, task_id: str, reason: str | None = None) -> Task:
        return await self._move(task_id, "release", {"reason": reason})

    async def offer_estimate(
        self,
        task_id: str,
        *,
        amount: Money | None = None,
        eta_seconds: int | None = None,
        note: str | None = None,
    ) -> Task:
        body = {"amount": amount, "eta_seconds": eta_seconds, "note": note}
        return await self._move(task_id, "estimate", body)

    async def decide(self, task_id: str, decision: Decision | Mapping[str, Any]) -> Task:
        path = f"/v1/tasks/{_seg(task_id)}/decision"
        return _task(await self._post(path, decision, dedup=True))

    async def submit(self, task_id: str, output: Any) -> Task:
        path = f"/v1/tasks/{_seg(task_id)}/submissions"
        return _task(await self._post(path, {"output": output}, dedup=True))

    # ------------------------------------------------------------ admin

    async def verify(self, task_id: str, output: Any = None, reason: str | None = None) -> Task:
        return await self._move(task_id, "verify", {"output": output, "reason": reason})

    async def fail(self, task_id: str, reason: str) -> Task:
        return await self._move(task_id, "fail", {"reason": reason})

    async def resolve_dispute(self, task_id: str, *, uphold: bool, reason: str) -> Task:
        return await self._move(task_id, "resolve-dispute", {"uphold": uphold, "reason": reason})

    # ------------------------------------------------------------ money

    async def deposit(self, amount: Money, *, key: str, reference: str | None = None) -> Posting:
        if not key or not key.strip():
            raise ValidationError.at("$.key", "must not be blank")
        body = {"amount": amount, "reference": reference}
        return Posting.model_validate(await self._post("/v1/deposits", body, key=key, dedup=True))

    async def balance(self, currency: Currency | str = "USD") -> Balance:
        return Balance.model_validate(await self._get("/v1/balance", currency=currency))

    async def earnings(
        self, currency: Currency | str = "USD", worker_id: str | None = None
    ) -> Earnings:
        data = await self._get("/v1/earnings", currency=currency, worker_id=worker_id)
        return Earnings.model_validate(data)

    async def entries(
        self, account: Account, *, after: int | None = None, limit: int = 50
    ) -> EntryPage:
        """The API lists the organisation's account and the caller's own earnings."""
        names = {
            AccountKind.ORG_AVAILABLE: "org",
            AccountKind.WORKER_PENDING: "pending",
            AccountKind.WORKER_AVAILABLE: "available",
        }
        name = names.get(account.kind)
        if name is None:
            raise ValidationError.at(
                "$.account",
                "over HTTP only the organisation's account and your own earnings are listed",
            )
        org, me = await self.whoami()
        if account.org_id != org or (name != "org" and account.owner != me):
            raise NotFound("account", account.id)
        data = await self._get(
            "/v1/ledger/entries", account=name, currency=account.currency, after=after, limit=limit
        )
        items = tuple(EntryRecord.model_validate(e) for e in data["data"])
        return EntryPage(items=items, next_cursor=data.get("next_cursor"))

    async def request_payout(self, amount: Money, *, key: str) -> PayoutRecord:
        if not key or not key.strip():
            raise ValidationError.at("$.key", "must not be blank")
        data = await self._post("/v1/payouts", {"amount": amount}, key=key, dedup=True)
        return PayoutRecord.model_validate(data)

    async def payouts(self, worker_id: str | None = None) -> builtins.list[PayoutRecord]:
        data = await self._get("/v1/payouts", worker_id=worker_id)
        return [PayoutRecord.model_validate(p) for p in data["data"]]

    # ------------------------------------------------------------ policies and authority

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def get_policy(self) -> Policy:
        return Policy.model_validate(await self._get("/v1/policy"))

    async def put_policy(
        self, policy: Policy | Mapping[str, Any], *, expected_version: int | None = None
    ) -> Policy:
        rules = policy.rules if isinstance(policy, Policy) else policy.get("rules", [])
        body = {"rules": rules, "expected_version": expected_version}
        return Policy.model_validate(await self._call("PUT", "/v1/policy", body=body))

    async def explain_policy(
        self, review: TaskSpec | Mapping[str, Any], *, policy: Policy | Mapping[str, Any] | None
    ) -> Explanation:
        spec = review if isinstance(review, TaskSpec) else TaskSpec.model_validate(review)
        body: dict[str, Any] = spec.model_dump(
            mode="json",
            include={"action", "task_type", "risk_tier", "payload", "metadata", "confidence"},
        )
        if policy is not None:
            rules = policy.rules if isinstance(policy, Policy) else policy.get("rules", [])
            body["policy"] = {"rules": rules}
        data = await self._post("/v1/policy/explain", body, dedup=True)
        return Explanation.model_validate(data)

    async def list_groups(self) -> builtins.list[ReviewerGroup]:
        return [ReviewerGroup.model_validate(g) for g in await self._get("/v1/reviewer-groups")]

    async def put_group(
        self, name: str, members: Collection[str], description: str | None = None
    ) -> ReviewerGroup:
        body = {"members": list(members), "description": description}
        path = f"/v1/reviewer-groups/{_seg(name)}"
        data = await self._call("PUT", path, body=body, deduplicated=True)
        return ReviewerGroup.model_validate(data)

    async def delete_group(self, name: str) -> None:
        await self._call("DELETE", f"/v1/reviewer-groups/{_seg(name)}")

    async def list_standing(self, *, active: bool = True) -> builtins.list[StandingApproval]:
        data = await self._get("/v1/standing-approvals", active=active)
        return [StandingApproval.model_validate(a) for a in data["data"]]

    async def revoke_standing(
        self, approval_id: str, reason: str | None = None
    ) -> StandingApproval:
        path = f"/v1/standing-approvals/{_seg(approval_id)}/revoke"
        data = await self._post(path, {"reason": reason}, dedup=True)
        return StandingApproval.model_validate(data)

    async def mint_token(
        self,
        task_id: str,
        reviewer_id: str,
        *,
        ttl_seconds: int = 24 * 3600,
        decision: DecisionType | str | None = None,
    ) -> tuple[str, TokenClaims]:
        body = {"reviewer_id": reviewer_id, "ttl_seconds": ttl_seconds, "decision": decision}
        data = await self._post(f"/v1/tasks/{_seg(task_id)}/decision-tokens", body)
        claims = TokenClaims(
            id=data["token_id"],
            org_id=(await self.whoami())[0],
            task_id=data["task_id"],
            reviewer_id=data["reviewer_id"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            decision=DecisionType(data["decision"]) if data.get("decision") else None,
        )
        return str(data["token"]), claims

    async def redeem_token(
        self, token: str, decision: Decision | Mapping[str, Any], *, task_id: str | None = None
    ) -> Task:
        """The token is the credential here (the API key is sent too, and ignored)."""
        target = task_id or peek_task(token)
        if target is None:
            raise TokenRejected("invalid", "not a decision token")
        path = f"/v1/tasks/{_seg(target)}/decision/by-token"
        return _task(await self._post(path, {"token": token, "decision": decision}))

    async def audit_entries(self, *, after: int = 0, limit: int = 100) -> builtins.list[AuditEntry]:
        data = await self._get("/v1/audit", after=after, limit=limit)
        return [AuditEntry.model_validate(e) for e in data["data"]]

    async def verify_audit(self) -> ChainReport:
        return ChainReport.model_validate(await self._get("/v1/audit/verify"))


def _seg(value: str) -> str:
    """One path segment: an id cannot reach another route."""
    return quote(value, safe="")
