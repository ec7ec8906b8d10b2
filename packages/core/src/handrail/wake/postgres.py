"""``PostgresWaker``: waiters in every process on one PostgreSQL wake on any change.

Publishing sends ``NOTIFY`` on a channel every process ``LISTEN``s to (after the change
committed, as the engine always publishes). The writer does not wait for it: its local
waiters are woken at once, and the channels go to a sender task that sends what piled up
meanwhile as one ``NOTIFY`` (so concurrent writers share round trips instead of queueing
for the sending connection). Each process hands what arrives to its own in-process
subscribers. If the listening connection drops, the waker reconnects with
backoff and wakes every local waiter once, so nothing that happened meanwhile is missed:
they re-read. Local subscribers are also woken at once, without waiting for the round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ._local import LocalWaker, _LocalSubscription

__all__ = ["PostgresWaker", "asyncpg_dsn"]

log = logging.getLogger(__name__)
MAX_PAYLOAD = 7_000  # NOTIFY payloads must stay under 8,000 bytes


def asyncpg_dsn(url: str) -> str:
    """A plain ``postgresql://`` DSN for asyncpg from any SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PostgresWaker:
    def __init__(self, dsn: str, *, channel: str = "handrail_changes", **connect: Any) -> None:
        self.dsn = dsn
        self.channel = channel
        self._connect = connect
        self._local = LocalWaker()
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncpg.Connection | None = None
        self._pending: set[str] = set()  # channels published and not yet sent
        self._due = asyncio.Event()
        self._sending: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, channel: str = "handrail_changes", **connect: Any
    ) -> PostgresWaker:
        waker = cls(asyncpg_dsn(url), channel=channel, **connect)
        await waker._listen()
        return waker

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn, **self._connect)
        await conn.add_listener(self.channel, self._arrived)
        conn.add_termination_listener(self._lost)
        self._listener = conn

    def _arrived(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._local.publish_now(payload.split())

    def _lost(self, conn: Any) -> None:
        if not self._closed and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("LISTEN connection lost; retrying in %.1f s (%s)", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._local.wake_all()  # changes made while we were deaf: everyone re-reads
            return

    def subscribe(self, channels: Collection[str]) -> _LocalSubscription:
        return self._local.subscribe(channels)

    async def publish(self, channels: Collection[str]) -> None:
        self._local.publish_now(channels)  # our own waiters need no round trip
        if self._closed:
            return
        self._pending.update(channels)
        self._due.set()
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_forever())

    async def _send_forever(self) -> None:
        while not self._closed or self._pending:
            await self._due.wait()
            self._due.clear()
            await self._send_pending()

    async def _send_pending(self) -> None:
        channels, self._pending = sorted(self._pending), set()
        payload = " ".join(channels)
        while payload:
            cut = payload.rfind(" ", 0, MAX_PAYLOAD) if len(payload) > MAX_PAYLOAD else -1
            part, payload = (payload, "") if cut < 0 else (payload[:cut], payload[cut + 1 :])
            await self._notify(part)

    async def _notify(self, payload: str) -> None:
        for attempt in range(2):
            try:
                if self._sender is None or self._sender.is_closed():
                    self._sender = await asyncpg.connect(self.dsn, **self._connect)
                await self._sender.execute("SELECT pg_notify($1, $2)", self.channel, payload)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._sender = None
                if attempt:  # other processes' waiters fall back on their backstop
                    log.warning("could not NOTIFY; remote waiters will re-read later")

    async def aclose(self) -> None:
        self._closed = True
        if self._sending is not None and not self._sending.done():
            self._due.set()  # what was published goes out before the connections close
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sending, 5)
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        for conn in (self._listener, self._sender):
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close()
