"""``create_app``: the FastAPI application over one hub."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handrail.clock import Clock

from . import compat, web
from .access import guard
from .guards import BodyLimitMiddleware, HeaderLimitMiddleware, check_input
from .hub import open_hub
from .parked import ParkedWaits
from .problems import CrashGuard, RequestIdMiddleware, install
from .routes import (
    audit,
    integrations,
    keys,
    money,
    notifications,
    policy,
    system,
    tasks,
    waiting,
    webhooks,
    work,
    workers,
)
from .settings import Settings

__all__ = ["create_app"]

UPLOAD_OVERHEAD = 64 * 1024  # multipart boundaries, headers and form fields around a file

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
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.hub = await open_hub(settings, clock=clock, schemes=compat.SCHEMES)
        try:
            yield
        finally:
            await app.state.hub.close()

    app = FastAPI(
        title="Handrail",
        version="0.1.0",
        description="Verified human decisions for AI agents: ask, wait, and get back what a "
        "person decided.",
        lifespan=lifespan,
        dependencies=[Depends(check_input), Depends(guard)],
    )
    install(app)
    for module in (
        tasks,
        waiting,
        work,
        money,
        policy,
        audit,
        workers,
        keys,
        webhooks,
        notifications,
        integrations,
        system,
    ):
        app.include_router(module.router)
    compat.install(app)
    web.install(app, settings)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes + UPLOAD_OVERHEAD,
    )
    app.add_middleware(ParkedWaits)  # inside the metrics and request ids, above the rest
    app.add_middleware(
        HeaderLimitMiddleware, max_bytes=settings.max_header_bytes, max_count=settings.max_headers
    )
    app.add_middleware(CrashGuard)  # a 500 that does not reset the connection
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
