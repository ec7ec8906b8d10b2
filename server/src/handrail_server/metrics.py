"""The server's Prometheus metrics: requests by method, route and status, and their
latency (served at ``/metrics``)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LATENCY", "REQUESTS", "MetricsMiddleware", "observe"]

REQUESTS = Counter("handrail_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("handrail_http_request_seconds", "HTTP request latency", ["method", "route"])


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, seen)
        finally:
            observe(scope, getattr(scope.get("route"), "path", "unmatched"), status, started)


def observe(scope: Scope, route: str, status: int, started: float) -> None:
    """Count one answered request and its latency (``started``: ``perf_counter``)."""
    REQUESTS.labels(scope["method"], route, str(status)).inc()
    LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
