"""The in-process waker, the change-feed waker and the protocol they share (see the
package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Collection
from types import TracebackType
from typing import Protocol, Self

from ..store import Store

__all__ = [
    "ChangeFeedWaker",
    "LocalWaker",
    "Subscription",
    "Waker",
    "org_channel",
    "task_channel",
]


log = logging.getLogger(__name__)


def task_channel(task_id: str) -> str:
    return f"task:{task_id}"


def org_channel(org_id: str) -> str:
    return f"org:{org_id}"


class Subscription(Protocol):
    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a publication since the last call (or since subscribing).

        True when there was one; False when ``timeout`` seconds passed without.
        """
        ...

    def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Waker(Protocol):
    def subscribe(self, channels: Collection[str]) -> Subscription: ...

    async def publish(self, channels: Collection[str]) -> None: ...

    async def aclose(self) -> None: ...


class _LocalSubscription:
    # A flag and, only while someone waits, a future: what asyncio.Event does, without the
    # deque of waiters it keeps for its whole life (a parked long-poll holds one of these).
    __slots__ = ("_channels", "_fired", "_loop", "_notifier", "_waiter")

    def __init__(self, waker: LocalWaker, channels: Collection[str]) -> None:
        self._notifier = waker
        self._channels = tuple(channels)
        self._loop = asyncio.get_running_loop()
        self._fired = False
        self._waiter: asyncio.Future[None] | None = None

    def _set(self) -> None:
        self._fired = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _signal(self) -> None:
        # Called from any thread: hand the wake-up to the subscriber's own loop.
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._set()
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed: nobody to wake
                self._loop.call_soon_threadsafe(self._set)

    async def wait(self, timeout: float | None = None) -> bool:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
        # that arrives as the event fires, leaving the caller running after cancel().
        if not self._fired:
            waiter = self._waiter = self._loop.create_future()
            try:
                async with asyncio.timeout(None if timeout is None else max(timeout, 0.0)):
                    await waiter
            except TimeoutError:
                return False
            finally:
                self._waiter = None
        self._fired = False
        return True

    def close(self) -> None:
        self._notifier._remove(self, self._channels)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalWaker:
    """In-process publish/subscribe. Subscribing must happen inside a running event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[_LocalSubscription]] = {}
        self._open: set[_LocalSubscription] = set()

    def subscribe(self, channels: Collection[str]) -> _LocalSubscription:
        sub = _LocalSubscription(self, channels)
        with self._lock:
            self._open.add(sub)
            for channel in sub._channels:
                self._subs.setdefault(channel, set()).add(sub)
        return sub

    def _remove(self, sub: _LocalSubscription, channels: Collection[str]) -> None:
        with self._lock:
            self._open.discard(sub)
            for channel in channels:
                subs = self._subs.get(channel)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subs[channel]

    def publish_now(self, channels: Collection[str]) -> None:
        with self._lock:
            targets = {s for c in channels for s in self._subs.get(c, ())}
        for sub in targets:
            sub._signal()

    async def publish(self, channels: Collection[str]) -> None:
        self.publish_now(channels)

    def wake_all(self) -> None:
        """Wake every subscriber (after a gap in what we heard: they re-read)."""
        with self._lock:
            targets = list(self._open)
        for sub in targets:
            sub._signal()

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions (read in constant time: the change feed asks every few ms)."""
        return len(self._open)

    async def aclose(self) -> None:
        return None


class ChangeFeedWaker:
    """Local notification plus changes other processes commit to a shared store.

    While at least one subscription is open, a background task reads the store's change
    feed every ``interval`` seconds (default 10 ms) and republishes what it finds locally;
    with no subscribers it stops. Changes made by this process are published at once.
    """

    def __init__(self, store: Store, seq: int, *, interval: float = 0.01) -> None:
        self._store = store
        self._local = LocalWaker()
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._seq = seq

    @classmethod
    async def open(cls, store: Store, *, interval: float = 0.01) -> ChangeFeedWaker:
        """A waker following the feed from its current end."""
        return cls(store, await store.last_seq(), interval=interval)

    def subscribe(self, channels: Collection[str]) -> _LocalSubscription:
        sub = self._local.subscribe(channels)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())
        return sub

    async def publish(self, channels: Collection[str]) -> None:
        self._local.publish_now(channels)

    async def _follow(self) -> None:
        # The cursor is kept when the feed idles, so a change committed between an idle
        # spell and a new subscription is still seen.
        while self._local.subscriber_count:
            await asyncio.sleep(self._interval)
            try:
                changes = await self._store.changes_since(self._seq)
            except Exception:  # a transient store error must not kill the feed
                log.warning("cannot read the change feed; retrying in 1 s", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if changes:
                self._seq = changes[-1].seq
                channels = {task_channel(c.task_id) for c in changes}
                channels |= {org_channel(c.org_id) for c in changes}
                self._local.publish_now(channels)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
