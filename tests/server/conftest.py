"""Server test fixtures: an app on a fresh database per test, keys for two organisations,
and an HTTP client over ASGI (no network)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from handrail import Role
from handrail.clock import ManualClock, SystemClock
from handrail_server.app import create_app
from handrail_server.hub import Hub
from handrail_server.keys import create_key
from handrail_server.settings import Settings
from tests.postgres import asyncpg_dsn


@dataclass
class Org:
    """One organisation's keys, as headers ready to send."""

    id: str
    admin: dict[str, str]
    requester: dict[str, str]
    reviewer: dict[str, str]
    sandbox: dict[str, str]


@dataclass
class Server:
    app: FastAPI
    hub: Hub
    client: httpx.AsyncClient
    a: Org
    b: Org

    async def key(self, org: str, role: Role, **kw: Any) -> dict[str, str]:
        now = self.hub.clock.now()
        made = await self.hub.store.run(
            lambda c: create_key(c, org_id=org, role=role, now=now, **kw)
        )
        return {"Authorization": f"Bearer {made.key}"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'server.db'}",
        "upload_dir": tmp_path / "uploads",
        "allow_private_webhooks": True,  # the test receivers listen on loopback
        "rate_limit_per_second": 1000.0,
        "rate_limit_burst": 1000,
        "sla_interval": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def clock() -> SystemClock | ManualClock:
    return SystemClock()


async def _org(server_hub: Hub, name: str) -> Org:
    async def header(role: Role, **kw: Any) -> dict[str, str]:
        now = server_hub.clock.now()
        made = await server_hub.store.run(
            lambda c: create_key(
                c, org_id=name, role=role, now=now, principal=kw.pop("principal", None), **kw
            )
        )
        return {"Authorization": f"Bearer {made.key}"}

    return Org(
        id=name,
        admin=await header(Role.ADMIN, principal=f"{name}-admin"),
        requester=await header(Role.REQUESTER, principal=f"{name}-agent"),
        reviewer=await header(Role.REVIEWER, principal=f"{name}-reviewer"),
        sandbox=await header(Role.REQUESTER, principal=f"{name}-sandbox-agent", sandbox=True),
    )


@asynccontextmanager
async def running(settings: Settings, clock: Any = None) -> AsyncIterator[Server]:
    """An app with its lifespan started, a client over ASGI and the two organisations (for a
    test that needs a server with settings of its own, or two servers)."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        hub: Hub = app.state.hub
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://handrail.test"
        ) as client:
            yield Server(app, hub, client, await _org(hub, "acme"), await _org(hub, "rival"))


@pytest.fixture
async def server(settings: Settings, clock: Any) -> AsyncIterator[Server]:
    async with running(settings, clock) as started:
        yield started


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """A server on SQLite, and one on a PostgreSQL database of its own."""
    if request.param == "sqlite":
        async with running(make_settings(tmp_path, compat_open_registration=True)) as s:
            yield s
        return
    url = request.getfixturevalue("postgres_url")
    name = f"access_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = re.sub(r"/[^/]*$", f"/{name}", url)
        try:
            settings = make_settings(tmp_path, database_url=db, compat_open_registration=True)
            async with running(settings) as s:
                yield s
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


ReviewSpec = Callable[..., dict[str, Any]]


def review(name: str = "send_email", **more: Any) -> dict[str, Any]:
    return {"kind": "review", "action": {"name": name, "args": {"to": "a@example.com"}}, **more}


# ---------------------------------------------------------------- streaming


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        chunks: asyncio.Queue[bytes | None],
        gone: asyncio.Event,
        app: asyncio.Task[None],
    ) -> None:
        self._chunks, self._gone, self._app = chunks, gone, app

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()  # the client hung up: the app sees http.disconnect
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._app, 10)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Like ``httpx.ASGITransport``, but the body arrives as the app sends it, so a stream
    that never ends (server-sent events) can be read, and closing the response disconnects
    (``httpx.ASGITransport`` waits for the whole body before it answers)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        gone = asyncio.Event()
        start: asyncio.Future[MutableMapping[str, Any]] = asyncio.get_running_loop().create_future()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.set_result(message)
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await chunks.put(message["body"])
                if not message.get("more_body", False):
                    await chunks.put(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                if not start.done():
                    start.set_exception(exc)
                raise
            finally:
                await chunks.put(None)

        app = asyncio.create_task(run())
        started = await start
        return httpx.Response(
            started["status"], headers=started.get("headers", []), stream=_Body(chunks, gone, app)
        )


@asynccontextmanager
async def streaming(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose responses stream (for SSE)."""
    transport = StreamingASGITransport(server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as client:
        yield client


@asynccontextmanager
async def sse(server: Server, path: str, **request: Any) -> AsyncIterator[httpx.Response]:
    """A streaming GET of ``path`` (hung up on leaving the block)."""
    async with streaming(server) as client, client.stream("GET", path, **request) as response:
        yield response


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The server-sent events of a streaming response, as they come (comments skipped)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SseEvent(
                    fields.get("event", "message"), json.loads("\n".join(data)), fields.get("id")
                )
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
