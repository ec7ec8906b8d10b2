"""Who is calling: API keys to principals, and per-key rate limits."""

from __future__ import annotations

import base64
import math
import threading
import time
from dataclasses import dataclass, field

from fastapi import Request

from handrail import Principal, Role
from handrail.store.sql import SqlStore
from handrail.wake import Waker

from .keys import KEYS_CHANNEL, KeyInfo, lookup
from .problems import ApiProblem

__all__ = ["Authenticator", "RateLimiter", "presented_key", "require"]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, bursts up to ``burst``. In one
    process; behind several processes each enforces its share."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


def _basic(value: str) -> str:
    """The API key in HTTP Basic credentials: the password, or the user name when the
    password is empty (``curl -u hr_live_...:``, ``http://name:hr_live_...@host/``)."""
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return ""
    return (password or user).strip()


def presented_key(request: Request) -> str:
    """The API key a request carries: ``Authorization: Bearer <key>``, ``X-API-Key``, or
    HTTP Basic credentials; empty when none."""
    header = request.headers.get("authorization", "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        token = value.strip()
    elif scheme.lower() == "basic":
        token = _basic(value.strip())
    else:
        token = ""
    return token or request.headers.get("x-api-key", "").strip()


class Authenticator:
    """Resolves ``Authorization: Bearer <key>`` (or ``X-API-Key``, or HTTP Basic with the
    key as password) to a principal, once per request.

    Known keys are remembered for ``ttl`` seconds. A revocation takes effect at once in
    the process that made it (:meth:`forget`); other processes learn of it from the
    waker (:meth:`follow`: on PostgreSQL the revoking transaction sends ``NOTIFY``, which
    every process ``LISTEN``s to) and, at the latest, when the remembered entry expires
    (``ttl``: 1 s; on SQLite, where another process is a command line, that is the
    bound)."""

    def __init__(self, store: SqlStore, limiter: RateLimiter, ttl: float = 1.0) -> None:
        self.store = store
        self.limiter = limiter
        self.ttl = ttl
        self._known: dict[str, tuple[KeyInfo | None, float]] = {}
        self._principals: dict[KeyInfo, Principal] = {}

    async def key(self, request: Request) -> KeyInfo:
        """The request's key, checked (and rate-limited) once however often it is asked."""
        held: KeyInfo | None = getattr(request.state, "handrail_key", None)
        if held is None:
            held = await self.check(presented_key(request))
            request.state.handrail_key = held
        return held

    def forget(self, key_id: str | None = None) -> None:
        """Drop what is remembered of key ``key_id`` (of every key when None)."""
        if key_id is None:
            self._known.clear()
            return
        for token, (info, _) in list(self._known.items()):
            if info is not None and info.id == key_id:
                self._known.pop(token, None)

    async def follow(self, waker: Waker) -> None:
        """Forget every remembered key whenever a key is revoked anywhere (runs until
        cancelled). A reconnecting waker wakes every subscriber: then too."""
        async with waker.subscribe([KEYS_CHANNEL]) as sub:
            while True:
                if await sub.wait(None):
                    self.forget()

    async def check(self, token: str) -> KeyInfo:
        """The live key ``token`` stands for, once the rate limit lets it through; 401 when
        it is missing, unknown or revoked, 429 when it is over its limit."""
        if not token:
            raise ApiProblem(
                401,
                "unauthenticated",
                "send an API key: Authorization: Bearer hr_live_... (or hr_test_...)",
                {"WWW-Authenticate": "Bearer"},
            )
        now = time.monotonic()
        cached = self._known.get(token)
        if cached is None or cached[1] < now:
            info = await self.store.run(lambda conn: lookup(conn, token), readonly=True)
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[token] = (info, now + self.ttl)
        else:
            info = cached[0]
        if info is None:
            raise ApiProblem(
                401, "unauthenticated", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"}
            )
        wait = self.limiter.take(info.id)
        if wait:
            raise ApiProblem(
                429,
                "rate_limited",
                "too many requests for this key; slow down",
                {"Retry-After": str(max(1, math.ceil(wait)))},
                retry_after=round(wait, 3),
            )
        return info

    async def principal(self, request: Request) -> Principal:
        """The request's principal: one object per key while the key is known (a parked
        long-poll holds it), not one per request."""
        info = await self.key(request)
        made = self._principals.get(info)
        if made is None:
            if len(self._principals) > 10_000:
                self._principals.clear()
            made = self._principals[info] = info.as_principal()
        return made


def require(principal: Principal, role: Role) -> None:
    """Refuse a principal without ``role`` (admins have every role)."""
    if not principal.has(role):
        raise ApiProblem(403, "forbidden", f"this needs a key with the {role.value} role")
