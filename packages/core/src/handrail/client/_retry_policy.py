"""``RetryPolicy``: how the HTTP client retries a failed request (apart from the wire
itself, so that holding a policy does not load the HTTP stack)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a request is retried: up to ``max_attempts`` tries in all, the ``n``-th retry
    after a random pause of up to ``min(cap, base × 2ⁿ)`` seconds (full jitter), and never
    sooner than ``Retry-After``. A ``Retry-After`` over ``max_retry_after`` seconds is not
    waited for: the error is raised."""

    max_attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0 or self.max_retry_after < 0:
            raise ValueError("retry delays must not be negative")

    def backoff(self, retry: int) -> float:
        """The pause before retry number ``retry`` (0 for the first)."""
        return random.uniform(0, min(self.cap, self.base * 2.0 ** min(retry, 60)))
