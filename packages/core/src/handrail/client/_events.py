"""The organisation's event stream as the client hands it out: a sync iterator and an async
one, each a context manager that closes the stream.

The stream itself belongs to the backend and runs on the client's portal loop; these
objects only step it from the caller's thread (or loop). The sync stream is open (its
position fixed) when ``tasks.events()`` returns; the async one when it is entered (or first
iterated).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Self

from ..models import TaskEvent
from ._portal import Portal

__all__ = ["AsyncEventStream", "EventStream"]

Opener = Callable[[], Awaitable[AsyncGenerator[TaskEvent, None]]]


class _Stream:
    """The backend's stream, stepped and closed on the portal loop.

    A read its caller gives up on (a timeout, a cancelled task) goes on here, and the
    next read takes its event: nothing is lost, and the generator is never cancelled
    half-way. Closing stops a read in flight (which then comes back as the end) before it
    closes the generator, which cannot be closed while it runs."""

    def __init__(self, stream: AsyncGenerator[TaskEvent, None]) -> None:
        self._stream = stream
        self._step: asyncio.Future[TaskEvent | None] | None = None
        self._closed = False

    async def next(self) -> TaskEvent | None:
        """The next event, or None at the end (on the portal)."""
        if self._closed:
            return None
        if self._step is None:
            self._step = asyncio.ensure_future(self._next())
        step = self._step
        try:
            event = await asyncio.shield(step)
        except asyncio.CancelledError:
            if step.cancelled():  # only close() cancels a step (the shield keeps callers off)
                return None
            raise
        self._step = None
        return event

    async def _next(self) -> TaskEvent | None:
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            return None

    async def close(self) -> None:
        """(On the portal.)"""
        self._closed = True
        step, self._step = self._step, None
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait([step])
        await self._stream.aclose()


async def _open(opener: Opener) -> _Stream:
    return _Stream(await opener())


class EventStream:
    """Events, one ``next()`` at a time; ``close()`` it (or use ``with``)."""

    def __init__(self, portal: Portal, opener: Opener) -> None:
        self._portal = portal
        self._stream: _Stream | None = portal.call(_open(opener))

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> TaskEvent:
        if self._stream is None:
            raise StopIteration
        event = self._portal.call(self._stream.next())
        if event is None:
            self.close()
            raise StopIteration
        return event

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._portal.call(stream.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventStream:
    """Events for ``async for``; open when entered (``async with``) or first iterated,
    closed by ``aclose()`` or on leaving the ``async with``."""

    def __init__(self, portal: Portal, opener: Opener) -> None:
        self._portal = portal
        self._opener = opener
        self._stream: _Stream | None = None
        self._closed = False

    async def _opened(self) -> _Stream | None:
        if self._stream is None and not self._closed:
            self._stream = await self._portal.acall(_open(self._opener))
        return self._stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TaskEvent:
        stream = await self._opened()
        if stream is None:
            raise StopAsyncIteration
        event = await self._portal.acall(stream.next())
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._portal.acall(stream.close())

    async def __aenter__(self) -> Self:
        await self._opened()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
