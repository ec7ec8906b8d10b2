"""``create_app``: the FastAPI application over one hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from handrail.clock import Clock

from . import compat, web
from .access import guard
from .guards import BodyLimitMiddleware, HeaderLimitMiddleware, check_input
from .hub import open_hub
from .metrics import MetricsMiddleware
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


class HandrailApp(FastAPI):
    """The FastAPI application, with :class:`~handrail_server.parked.ParkedWaits` in front
    of its whole middleware stack (a parked long-poll holds none of it)."""

    parked: dict[str, Any]

    def build_middleware_stack(self) -> ASGIApp:
        return ParkedWaits(super().build_middleware_stack(), **self.parked)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.hub = await open_hub(settings, clock=clock, schemes=compat.SCHEMES)
        try:
            yield
        finally:
            await app.state.hub.close()

    app = HandrailApp(
        title="Handrail",
        version="0.1.0",
        description="Verified human decisions for AI agents: ask, wait, and get back what a "
        "person decided.",
        lifespan=lifespan,
        dependencies=[Depends(check_input), Depends(guard)],
    )
    app.parked = {
        "max_header_bytes": settings.max_header_bytes,
        "max_headers": settings.max_headers,
        "default_timeout": waiting.DEFAULT_WAIT,
    }
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
    app.add_middleware(
        HeaderLimitMiddleware, max_bytes=settings.max_header_bytes, max_count=settings.max_headers
    )
    app.add_middleware(CrashGuard)  # a 500 that does not reset the connection
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
