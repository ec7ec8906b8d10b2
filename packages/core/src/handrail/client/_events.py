"""The organisation's event stream as the client hands it out: a sync iterator and an async
one, each a context manager that closes the stream.

The stream itself belongs to the backend and runs on the client's portal loop; these
objects only step it from the caller's thread (or loop). The sync stream is open (its
position fixed) when ``tasks.events()`` returns; the async one when it is entered (or first
iterated).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Self

from ..models import TaskEvent
from ._portal import Portal

__all__ = ["AsyncEventStream", "EventStream"]

Opener = Callable[[], Awaitable[AsyncGenerator[TaskEvent, None]]]


async def _next(stream: AsyncGenerator[TaskEvent, None]) -> TaskEvent | None:
    """The stream's next event, or None at its end (run on the portal, which owns it)."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _open(opener: Opener) -> AsyncGenerator[TaskEvent, None]:
    return await opener()


class EventStream:
    """Events, one ``next()`` at a time; ``close()`` it (or use ``with``)."""

    def __init__(self, portal: Portal, opener: Opener) -> None:
        self._portal = portal
        self._stream: AsyncGenerator[TaskEvent, None] | None = portal.call(_open(opener))

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> TaskEvent:
        if self._stream is None:
            raise StopIteration
        event = self._portal.call(_next(self._stream))
        if event is None:
            self.close()
            raise StopIteration
        return event

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._portal.call(stream.aclose())

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
        self._stream: AsyncGenerator[TaskEvent, None] | None = None
        self._closed = False

    async def _opened(self) -> AsyncGenerator[TaskEvent, None] | None:
        if self._stream is None and not self._closed:
            self._stream = await self._portal.acall(_open(self._opener))
        return self._stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TaskEvent:
        stream = await self._opened()
        if stream is None:
            raise StopAsyncIteration
        event = await self._portal.acall(_next(stream))
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._portal.acall(stream.aclose())

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
