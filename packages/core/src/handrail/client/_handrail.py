"""``Handrail``: the client agents and reviewers hold, sync and async.

It holds a :class:`~handrail.session.Session` (``engine.session()`` for
:meth:`Handrail.local`, :class:`HttpSession` for ``Handrail(url, api_key)``) and a portal
(``_portal``): a private loop that runs the session, so sync and async callers share one
engine, one connection pool and one waker. Its methods are grouped in facades
(``hr.tasks``, ``hr.ledger``, ``hr.policy``, ``hr.workers``, ``hr.audit``: ``_facades``),
each a sync method and an ``a``-prefixed async twin derived from the session's operation
(``_twins``); ``review`` and ``ask`` are the client's own (``_review``).
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .._in_process import InProcessSession
from ..clock import Clock
from ..ledger import FeeSchedule, PayoutRail
from ..models import Action, Decision, DecisionType, Principal, Role
from ..runtime import Runtime, open_runtime
from ..sandbox import SandboxReviewer
from ..session import Session
from ..tokens import DecisionTokens
from ..verification import Verifier
from . import _review
from ._facades import AuditOps, LedgerOps, PolicyOps, Tasks, WorkerOps
from ._portal import Portal
from ._retry_policy import RetryPolicy
from ._review import OnTimeout

if TYPE_CHECKING:
    import httpx

__all__ = ["Handrail"]

log = logging.getLogger(__name__)


def _database(path: str | Path) -> str | Path:
    """A database URL as given (``postgresql://...``, ``sqlite:///...``); else a file."""
    return path if isinstance(path, str) and "://" in path else Path(path)


class Handrail:
    """Ask humans for decisions and answers; or, as a reviewer, give them.

    ``Handrail(url, api_key)`` talks to a Handrail server (:meth:`from_env` reads both
    from ``HANDRAIL_URL`` and ``HANDRAIL_API_KEY``); :meth:`local` runs the engine in this
    process. Either way the methods are the same. Use it as a context manager, or call
    :meth:`close`.

    Over HTTP, ``timeout`` bounds each ordinary request (long-polls run longer), ``retry``
    says how failed requests are retried (see :class:`RetryPolicy`), and ``transport``
    replaces httpx's network transport (for tests). ``session`` and ``portal`` build a
    client over a session of your own instead (``engine.session(principal)``, say, with a
    portal whose loop the engine lives on).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        session: Session | None = None,
        portal: Portal | None = None,
        on_close: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        if session is not None:
            if url is not None or api_key is not None:
                raise TypeError("give a server's url and api_key, or a session, not both")
            if portal is None:
                raise TypeError("a session runs on a portal: pass portal= too")
        else:
            if url is None:
                raise TypeError(
                    "Handrail needs the server's url and an api_key: Handrail(url, api_key); "
                    "or use Handrail.from_env() or Handrail.local()"
                )
            if api_key is None:
                raise TypeError(
                    "Handrail(url, api_key) needs an api_key (hr_live_... or hr_test_...)"
                )
            if portal is not None:
                raise TypeError("a client over HTTP runs on a portal of its own: drop portal=")
            from ._http_session import HttpSession  # noqa: PLC0415 - the HTTP stack, when used

            http = HttpSession(url, api_key, timeout=timeout, retry=retry, transport=transport)
            portal, session, then = Portal(), http, on_close

            async def close_http() -> None:
                try:
                    await http.aclose()
                finally:
                    if then is not None:
                        await then()

            on_close = close_http
        self._session = session
        self._portal = portal
        self._on_close = on_close
        self.tasks = Tasks(session, portal)
        self.ledger = LedgerOps(session, portal)
        self.policy = PolicyOps(session, portal)
        self.workers = WorkerOps(session, portal)
        self.audit = AuditOps(session, portal)

    @classmethod
    def from_env(
        cls,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Handrail:
        """A client of the server at ``HANDRAIL_URL`` with the key in ``HANDRAIL_API_KEY``."""
        url = os.environ.get("HANDRAIL_URL", "").strip()
        api_key = os.environ.get("HANDRAIL_API_KEY", "").strip()
        missing = [
            name
            for name, value in (("HANDRAIL_URL", url), ("HANDRAIL_API_KEY", api_key))
            if not value
        ]
        if missing:
            raise ValueError(
                f"Handrail.from_env() needs {' and '.join(missing)} set "
                "(the server's URL, e.g. http://127.0.0.1:8000, and an API key)"
            )
        return cls(url, api_key, timeout=timeout, retry=retry, transport=transport)

    @classmethod
    def local(
        cls,
        path: str | Path | None = None,
        *,
        org: str = "local",
        user: str = "local",
        sandbox: SandboxReviewer | bool = False,
        clock: Clock | None = None,
        verifier: Verifier | None = None,
        fees: FeeSchedule | None = None,
        hold_period: timedelta = timedelta(days=7),
        payout_rail: PayoutRail | None = None,
        sweep_interval: float | None = 1.0,
        token_secret: str | bytes | None = None,
    ) -> Handrail:
        """An in-process engine: in memory, in the SQLite file at ``path``, or in the
        database a URL names (``postgresql://...``, the ``sql`` extra; ``sqlite:///...``).

        The client acts as ``user`` of organisation ``org`` with every role, but, like any
        requester, it cannot decide the reviews it asks for: decide them through
        :meth:`as_reviewer` (a reviewer's view of the same engine). ``token_secret`` signs
        decision tokens (default: a random one for this process). With ``sandbox``, tasks
        are created in sandbox mode and a :class:`SandboxReviewer` answers them. With a
        ``path``, waiters also wake on changes other processes make to the same file (a
        terminal reviewer).
        Paid tasks (with a ``payout``) hold money in the ledger: deposit first
        (``hr.ledger.deposit``; sandbox credit in sandbox mode). ``fees``, ``hold_period``
        and ``payout_rail`` configure it. Every ``sweep_interval`` seconds a background job
        enforces SLAs (backup slots, re-routing, expiry) and settles earnings whose hold
        period is over.
        """
        portal = Portal()
        principal = Principal(
            org_id=org,
            id=user,
            roles=frozenset({Role.REQUESTER, Role.REVIEWER, Role.ADMIN}),
            sandbox=bool(sandbox),
        )
        reviewer = SandboxReviewer() if sandbox is True else sandbox or None

        async def build() -> tuple[Runtime, builtins.list[Any]]:
            runtime = await open_runtime(
                None if path is None else _database(path),
                clock=clock,
                verifier=verifier,
                fees=fees,
                hold_period=hold_period,
                payout_rail=payout_rail,
                tokens=DecisionTokens(token_secret) if token_secret else None,
                sweep_interval=sweep_interval or None,
            )
            background: builtins.list[Any] = []
            if reviewer is not None:
                background.append(portal.spawn(reviewer.run(runtime.engine, org)))
            return runtime, background

        try:
            runtime, background = portal.call(build())
        except BaseException:
            portal.close()
            raise
        engine, ledger = runtime.engine, runtime.ledger

        async def shutdown() -> None:
            for job in background:
                job.cancel()
            await runtime.aclose()

        return cls(session=engine.session(principal, ledger), portal=portal, on_close=shutdown)

    def as_reviewer(self, reviewer_id: str) -> Handrail:
        """A view of this client acting as reviewer ``reviewer_id`` (sharing its engine).

        Only in-process: over HTTP the API key decides who acts, so this raises
        ``NotImplementedError``; make a client with the reviewer's key instead."""
        if not isinstance(self._session, InProcessSession):
            raise NotImplementedError(
                "over HTTP the API key decides who acts, so a client cannot act as reviewer "
                f"{reviewer_id!r}: make a Handrail(url, api_key=...) with that reviewer's key"
            )
        return Handrail(session=self._session.as_reviewer(reviewer_id), portal=self._portal)

    @property
    def principal_id(self) -> str:
        return self._session.principal_id

    # ---------------------------------------------------------------- review

    def review(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        confidence: float | None = None,
        allowed: Sequence[DecisionType | str] | None = None,
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
        **fields: Any,
    ) -> Decision:
        """Ask a human to approve ``action`` and block until they decide.

        Returns the reviewer's :class:`Decision`. If nobody decides within ``timeout``
        seconds (or before the task's SLA), the review is cancelled and, with
        ``on_timeout="reject"``, a reject decision saying so comes back; with ``"raise"``,
        ``WaitTimeout`` is raised. Other failures raise. No path returns an approval that
        a reviewer did not give. Extra keywords (``title``, ``payload``, ``risk_tier``,
        ``sla_seconds``, ``idempotency_key``, ...) go into the task.
        """
        return self._portal.call(
            _review.review(
                self._session,
                action,
                args,
                reasoning,
                confidence,
                allowed,
                timeout,
                on_timeout,
                fields,
            )
        )

    async def areview(
        self,
        action: Action | Mapping[str, Any] | str,
        args: Mapping[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        confidence: float | None = None,
        allowed: Sequence[DecisionType | str] | None = None,
        timeout: float | None = None,
        on_timeout: OnTimeout = "reject",
        **fields: Any,
    ) -> Decision:
        return await self._portal.acall(
            _review.review(
                self._session,
                action,
                args,
                reasoning,
                confidence,
                allowed,
                timeout,
                on_timeout,
                fields,
            )
        )

    # ---------------------------------------------------------------- ask

    def ask(
        self,
        question: str,
        output_schema: Mapping[str, Any],
        *,
        payload: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        """Put a judgment to a human and block until a verified answer fits ``output_schema``.

        Raises ``NoAnswer`` when the task fails, expires or is cancelled, and
        ``WaitTimeout`` (after withdrawing the task) when ``timeout`` passes.
        """
        return self._portal.call(
            _review.ask(self._session, question, output_schema, payload, timeout, fields)
        )

    async def aask(
        self,
        question: str,
        output_schema: Mapping[str, Any],
        *,
        payload: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        return await self._portal.acall(
            _review.ask(self._session, question, output_schema, payload, timeout, fields)
        )

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Stop background work and release the store, or the HTTP connections (views made
        by ``as_reviewer`` share them and need no closing)."""
        if self._on_close is not None:
            hook, self._on_close = self._on_close, None
            try:
                self._portal.call(hook())
            finally:
                self._portal.close()

    async def aclose(self) -> None:
        if self._on_close is not None:
            hook, self._on_close = self._on_close, None
            try:
                await self._portal.acall(hook())
            finally:
                self._portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
