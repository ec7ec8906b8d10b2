"""Retrying what lost an optimistic-concurrency race."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import ConcurrencyConflict

__all__ = ["backoff", "retry_conflicts"]

T = TypeVar("T")


async def backoff(attempt: int) -> None:
    """A short random pause that grows with the attempt (at most 20 ms)."""
    await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))


async def retry_conflicts(op: Callable[[], Awaitable[T]], attempts: int = 50) -> T:
    """Run ``op`` again (after a backoff) each time it raises ``ConcurrencyConflict``."""
    for attempt in range(attempts - 1):
        try:
            return await op()
        except ConcurrencyConflict:
            await backoff(attempt)
    return await op()
