"""Shared test setup: offline by default, and PostgreSQL when there is one.

PostgreSQL-backed tests skip with the reason when none is reachable, and fail instead when
``HANDRAIL_REQUIRE_POSTGRES=1`` (as CI sets it). ``HANDRAIL_TEST_POSTGRES_URL`` points them
at a server (default: ``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own
schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.postgres import POSTGRES_URL, REQUIRE_POSTGRES, fresh_schema, probe

# ---------------------------------------------------------------- offline guard

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # unix sockets are local
    host = address[0]
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConnectionRefusedError(f"tests are offline: refusing to connect to {address!r}")


def _connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]

# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL, after checking that something answers there."""
    try:
        # in a thread of its own: this fixture may be requested while a loop is running
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe(POSTGRES_URL)).result()
    except Exception as exc:
        reason = f"no PostgreSQL reachable at {POSTGRES_URL} ({type(exc).__name__}: {exc})"
        if REQUIRE_POSTGRES:
            pytest.fail(f"HANDRAIL_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(f"{reason}; set HANDRAIL_TEST_POSTGRES_URL to run these tests")
    return POSTGRES_URL


@pytest.fixture
async def postgres_schema(postgres_url: str) -> AsyncIterator[str]:
    """A fresh, empty schema for one test."""
    async with fresh_schema(postgres_url) as name:
        yield name
