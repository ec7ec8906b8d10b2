"""TEMPORARY: today's ``LocalBackend`` and ``HttpBackend`` dressed as ``handrail.Session``,
so the session conformance suite runs before ``engine.session()`` and the HTTP session
exist. Delete this module when they land (issue 17).

Only names and signatures are adapted (``open_events`` → ``events``, ``mint_token`` →
``mint_decision_token``, ``redeem_token`` → ``redeem_decision_token``, ``explain_policy``'s
``policy`` default); behaviour is the backend's, so where the two disagree the suite shows
it. An operation a backend lacks: in-process it is the engine's own method (what
``engine.session`` will call); over HTTP the case is skipped, the reason naming the gap.
"""

from __future__ import annotations

from typing import Any

import pytest

from handrail.client import HttpBackend, LocalBackend


class _Renamed:
    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def events(self, after: int | None = None) -> Any:
        return await self._backend.open_events(after)

    async def mint_decision_token(self, *args: Any, **kw: Any) -> Any:
        return await self._backend.mint_token(*args, **kw)

    async def redeem_decision_token(self, *args: Any, **kw: Any) -> Any:
        return await self._backend.redeem_token(*args, **kw)

    async def explain_policy(self, review: Any, *, policy: Any = None) -> Any:
        return await self._backend.explain_policy(review, policy=policy)


class LocalSession(_Renamed):
    """``LocalBackend``; what it lacks, from the engine as the same principal."""

    def __init__(self, backend: LocalBackend) -> None:
        super().__init__(backend)
        self._engine, self._principal = backend.engine, backend.principal

    async def assign(self, task_id: str, worker_id: str) -> Any:
        return await self._engine.assign(self._principal, task_id, worker_id)

    async def withdraw_estimate(self, task_id: str, reason: str | None = None) -> Any:
        return await self._engine.withdraw_estimate(self._principal, task_id, reason)

    async def put_worker(self, profile: Any) -> Any:
        return await self._engine.put_worker(self._principal, profile)

    async def get_worker(self, worker_id: str) -> Any:
        return await self._engine.get_worker(self._principal, worker_id)

    async def list_workers(self) -> Any:
        return await self._engine.list_workers(self._principal)

    async def worker_stats(self, worker_id: str) -> Any:
        return await self._engine.worker_stats(self._principal, worker_id)


def _gap(operation: str, route: str) -> Any:
    async def missing(*args: Any, **kw: Any) -> Any:
        pytest.skip(f"gap: HttpBackend has no {operation} ({route})")

    return missing


class HttpSession(_Renamed):
    """``HttpBackend`` acting as ``principal_id`` (whoever its key belongs to)."""

    def __init__(self, backend: HttpBackend, principal_id: str) -> None:
        super().__init__(backend)
        self._principal_id = principal_id

    @property
    def principal_id(self) -> str:
        return self._principal_id

    assign = _gap("assign", "and the server no route")
    withdraw_estimate = _gap("withdraw_estimate", "and the server no route")
    put_worker = _gap("put_worker", "route PUT /v1/workers/{id}")
    get_worker = _gap("get_worker", "route GET /v1/workers/{id}")
    list_workers = _gap("list_workers", "route GET /v1/workers")
    worker_stats = _gap("worker_stats", "route GET /v1/workers/{id}/stats")
