"""Fixtures for the peers' dialects: a real server process (the peers' own clients speak
HTTP to it), keys for two organisations, a webhook receiver, and the real ``humanrail``
SDK unpacked from its wheel (kept out of the workspace's lock)."""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx
import pytest

from handrail import Role
from handrail.clock import SystemClock
from handrail.store.sql import SqlStore
from handrail_server.keys import create_key
from handrail_server.migrate import migrate
from tests.server._live import LiveServer, Receiver, bearer

WHEEL = Path(__file__).parent / "humanrail-0.1.0-py3-none-any.whl"
T = TypeVar("T")


@pytest.fixture(scope="session")
def humanrail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The ``humanrail`` 0.1.0 package from PyPI (MIT, pure Python; it declares Python
    3.12 but runs on 3.11), unpacked from its wheel onto ``sys.path`` for this session."""
    target = tmp_path_factory.mktemp("humanrail-sdk")
    with zipfile.ZipFile(WHEEL) as wheel:
        wheel.extractall(target)
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module("humanrail")
    finally:
        sys.path.remove(str(target))
        for name in [n for n in sys.modules if n == "humanrail" or n.startswith("humanrail.")]:
            del sys.modules[name]


@dataclass
class Org:
    """One organisation on the live server: its admin key, and more keys on demand."""

    id: str
    admin: str
    url: str

    def key(self, role: str, principal: str | None = None, *, sandbox: bool = False) -> str:
        body: dict[str, Any] = {"role": role, "sandbox": sandbox}
        if principal:
            body["principal"] = principal
        made = httpx.post(
            f"{self.url}/v1/keys", json=body, headers=bearer(self.admin), trust_env=False
        )
        assert made.status_code == 201, made.text
        key: str = made.json()["key"]
        return key

    def deposit(self, key: str, amount: str, idempotency_key: str) -> None:
        paid = httpx.post(
            f"{self.url}/v1/deposits",
            json={"amount": {"currency": "USD", "amount": amount}},
            headers={**bearer(key), "Idempotency-Key": idempotency_key},
            trust_env=False,
        )
        assert paid.status_code == 201, paid.text


@dataclass
class Live:
    server: LiveServer
    acme: Org
    rival: Org

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server process for these tests, on SQLite, with organisations acme and rival
    (each test makes keys of its own)."""
    workdir = tmp_path_factory.mktemp("compat-live")
    database = f"sqlite:///{workdir / 'compat.db'}"

    async def keys() -> tuple[str, str]:  # the database migrated, as the CLI would
        store = await SqlStore.open(database, create=False)
        try:
            await migrate(store)
            now = SystemClock().now()
            made = [
                await store.run(
                    lambda c, org=org: create_key(
                        c, org_id=org, role=Role.ADMIN, now=now, principal=f"{org}-admin"
                    )
                )
                for org in ("acme", "rival")
            ]
        finally:
            await store.close()
        return made[0].key, made[1].key

    acme, rival = asyncio.run(keys())
    server = LiveServer(database, workdir)
    server.start()
    try:
        asyncio.run(server.ready())
        yield Live(server, Org("acme", acme, server.url), Org("rival", rival, server.url))
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.start()
    try:
        yield started
    finally:
        started.stop()


def eventually(check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """``check()``'s first result that is not None: for what another process does (a
    delivery, a simulated reviewer), looked at every 10 ms."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {timeout} s")
        time.sleep(0.01)
