"""A private event loop on a daemon thread, so sync and async callers share one engine.

Async resources (database pools, notifiers) belong to the loop that made them. The client
runs everything on its portal loop: sync methods block on it, async methods await it from
whatever loop they run on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Portal"]


class Portal:
    def __init__(self, name: str = "handrail-portal") -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        ready.wait()
        self._closed = False

    def _on_portal(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal loop and block until it finishes."""
        if self._on_portal():
            coro.close()
            raise RuntimeError("a sync Handrail method was called on the client's own loop")
        if self._closed:
            coro.close()
            raise RuntimeError("this Handrail client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while blocked: stop the work too
            raise

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the portal loop from any loop (cancellation passes through)."""
        if self._on_portal():
            return await coro
        if self._closed:
            coro.close()
            raise RuntimeError("this Handrail client is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Start ``coro`` on the portal loop in the background."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def cancel_all() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if not self._on_portal():
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()
