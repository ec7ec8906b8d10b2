"""Server test fixtures: an app on a fresh database per test, keys for two organisations,
and an HTTP client over ASGI (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from handrail import Role
from handrail.clock import ManualClock, SystemClock
from handrail_server.app import create_app
from handrail_server.hub import Hub
from handrail_server.keys import create_key
from handrail_server.settings import Settings


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


@pytest.fixture
async def server(settings: Settings, clock: Any) -> AsyncIterator[Server]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        hub: Hub = app.state.hub
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://handrail.test"
        ) as client:
            yield Server(app, hub, client, await _org(hub, "acme"), await _org(hub, "rival"))


ReviewSpec = Callable[..., dict[str, Any]]


def review(name: str = "send_email", **more: Any) -> dict[str, Any]:
    return {"kind": "review", "action": {"name": name, "args": {"to": "a@example.com"}}, **more}
