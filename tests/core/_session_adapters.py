"""TEMPORARY: today's ``HttpBackend`` dressed as ``handrail.Session``, so the session
conformance suite runs over HTTP before the HTTP session exists. Delete this module when
it lands (issue 17); in process the suite already uses ``engine.session()``.

Only names and signatures are adapted (``open_events`` → ``events``, ``mint_token`` →
``mint_decision_token``, ``redeem_token`` → ``redeem_decision_token``, ``explain_policy``'s
``policy`` default); behaviour is the backend's, so where the two disagree the suite shows
it. A case using an operation the backend lacks is skipped, the reason naming the gap.
"""

from __future__ import annotations

from typing import Any

import pytest

from handrail.client import HttpBackend


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
