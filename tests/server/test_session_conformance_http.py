"""The session conformance suite over HTTP: the HTTP client against a live server (uvicorn
on a loopback port, in a thread) on SQLite and on PostgreSQL.

One server per store for the module; each test gets organisations of its own (fresh ids),
so it starts from an empty organisation as the suite asks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from handrail import Role
from handrail.client import HttpSession
from handrail.session import Session
from handrail.testing import SessionConformance
from handrail_server.app import create_app
from handrail_server.hub import Hub
from handrail_server.keys import create_key
from tests.postgres import asyncpg_dsn
from tests.server._live import serve_in_thread
from tests.server.conftest import make_settings


@dataclass
class Live:
    """A server on a loopback port, its hub, and the loop it runs on."""

    url: str
    hub: Hub
    loop: asyncio.AbstractEventLoop

    async def key(self, org: str, role: Role, principal: str) -> str:
        now = self.hub.clock.now()
        made = asyncio.run_coroutine_threadsafe(
            self.hub.store.run(
                lambda c: create_key(c, org_id=org, role=role, now=now, principal=principal)
            ),
            self.loop,
        )
        return (await asyncio.wrap_future(made)).key


@pytest.fixture(scope="module")
def _served() -> Iterator[list[Any]]:
    """What :func:`_serve` started, stopped at the end of the module."""
    stops: list[Any] = []
    yield stops
    for stop in reversed(stops):
        stop()


def _serve(tmp: Path, database_url: str) -> tuple[Live, Any]:
    """The app on a free loopback port, in a thread of its own; and how to stop it."""
    app = create_app(make_settings(tmp, database_url=database_url))
    served = serve_in_thread(app, "uvicorn-conformance")
    return Live(served.url, app.state.hub, served.loop), served.stop


def _in_thread(coro: Any) -> Any:
    """Run ``coro`` to its end on a loop of its own (a module fixture has none)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory, _served: list[Any]) -> Live:
    tmp = tmp_path_factory.mktemp("conformance-sqlite")
    live, stop = _serve(tmp, f"sqlite:///{tmp / 'server.db'}")
    _served.append(stop)
    return live


@pytest.fixture(scope="module")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, _served: list[Any]
) -> Live:
    """A server on a database of its own, dropped at the end of the module."""
    name = f"handrail_conf_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(postgres_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _in_thread(admin(f'CREATE DATABASE "{name}"'))
    _served.append(lambda: _in_thread(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    live, stop = _serve(tmp_path_factory.mktemp("conformance-postgres"), url)
    _served.append(stop)
    return live


class Sessions:
    """The ``sessions`` fixture's factory: API keys of a fresh organisation (and of a
    second one), each held by its own HTTP client."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.org_id = f"org-{uuid.uuid4().hex[:10]}"
        self._other = f"rival-{uuid.uuid4().hex[:10]}"
        self._open: dict[str, Session] = {}
        self._clients: list[HttpSession] = []

    async def _session(self, org: str, role: Role, principal: str) -> Session:
        if principal not in self._open:
            client = HttpSession(self.live.url, await self.live.key(org, role, principal))
            await client.whoami()
            self._clients.append(client)
            self._open[principal] = client
        return self._open[principal]

    async def requester(self) -> Session:
        return await self._session(self.org_id, Role.REQUESTER, "acme-agent")

    async def admin(self) -> Session:
        return await self._session(self.org_id, Role.ADMIN, "acme-admin")

    async def reviewer(self, name: str) -> Session:
        return await self._session(self.org_id, Role.REVIEWER, name)

    async def outsider(self) -> Session:
        return await self._session(self._other, Role.ADMIN, "rival-admin")

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def _sessions(live: Live) -> AsyncIterator[Sessions]:
    made = Sessions(live)
    try:
        yield made
    finally:
        await made.aclose()


class TestHttpSqliteSessions(SessionConformance):
    @pytest.fixture
    async def sessions(self, sqlite_server: Live) -> AsyncIterator[Sessions]:
        async for made in _sessions(sqlite_server):
            yield made


@pytest.mark.postgres
class TestHttpPostgresSessions(SessionConformance):
    @pytest.fixture
    async def sessions(self, postgres_server: Live) -> AsyncIterator[Sessions]:
        async for made in _sessions(postgres_server):
            yield made
