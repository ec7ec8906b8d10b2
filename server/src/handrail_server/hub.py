"""The hub: everything a running server holds, built at start and closed at stop.

One store, one engine with its ledger escrow and its webhook and notification outboxes, a
waker that reaches every process on the database (LISTEN/NOTIFY on PostgreSQL, the
change feed on SQLite), the authenticator, and the background jobs: SLA sweeps (with
escalations) and settlement, webhook delivery, notifications (email, Slack), and simulated
reviewers for organisations' sandboxes (each a world of its own: see ``modes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from handrail import Engine, SandboxReviewer, Task, Waker
from handrail.clock import Clock
from handrail.ledger import Ledger
from handrail.runtime import Runtime, open_runtime
from handrail.store import Store
from handrail.store.sql import SqlStore
from handrail.tokens import DecisionTokens

from ._created import CreatedHook
from ._subscribed import Owed
from .auth import Authenticator, RateLimiter
from .blobs import BlobStore, LocalBlobStore
from .idempotency import IdempotencyHook
from .migrate import migrate
from .modes import world
from .notifications import NotificationWorker, NotifyHook
from .settings import Settings
from .tables import api_keys
from .webhooks import DeliveryWorker, OutboxHook, Scheme
from .webhooks import schemes as webhook_schemes

__all__ = ["Hub", "open_hub"]

log = logging.getLogger(__name__)


@dataclass
class Hub:
    """The server's parts around the core :class:`Runtime` (store, waker, clock, ledger,
    engine and the sweep loop, built by :func:`handrail.runtime.open_runtime` exactly as
    ``Handrail.local`` builds them)."""

    settings: Settings
    runtime: Runtime
    store: SqlStore
    auth: Authenticator
    blobs: BlobStore
    delivery: DeliveryWorker
    notifications: NotificationWorker
    webhooks_owed: Owed = field(default_factory=Owed)
    notifications_owed: Owed = field(default_factory=Owed)
    jobs: list[asyncio.Task[Any]] = field(default_factory=list)
    sandboxes: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger

    @property
    def waker(self) -> Waker:
        return self.runtime.waker

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def start_background(self) -> None:
        self.runtime.start_sweeps(self.settings.sla_interval)
        self.jobs.append(asyncio.create_task(self.delivery.run(), name="handrail-webhooks"))
        self.jobs.append(
            asyncio.create_task(self.notifications.run(), name="handrail-notifications")
        )

    def observe(self, before: Task | None, after: Task) -> None:
        """After each commit: sandbox tasks get simulated reviewers; the webhook and
        notification workers are poked when the change queued rows for them (they poll
        besides, so rows other processes queued go out too)."""
        if self.webhooks_owed.take(after.id):
            self.delivery.poke()
        if self.notifications_owed.take(after.id):
            self.notifications.poke()
        if after.sandbox and self.settings.run_background:
            self.ensure_sandbox(after.org_id)

    def ensure_sandbox(self, org_id: str) -> None:
        """Simulated reviewers for the sandbox whose tenant id is ``org_id``."""
        job = self.sandboxes.get(org_id)
        if job is None or job.done():
            reviewer = SandboxReviewer(reviewer_id="sandbox")
            self.sandboxes[org_id] = asyncio.get_running_loop().create_task(
                reviewer.run(self.engine, org_id), name=f"handrail-sandbox-{org_id}"
            )

    async def close(self) -> None:
        await self.runtime.stop_sweeps()
        for job in [*self.jobs, *self.sandboxes.values()]:
            job.cancel()
        for job in [*self.jobs, *self.sandboxes.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        await self.delivery.aclose()
        await self.notifications.aclose()
        await self.runtime.aclose()  # the engine, its waker and the store


async def open_hub(
    settings: Settings, *, clock: Clock | None = None, schemes: Sequence[Scheme] = ()
) -> Hub:
    """Everything a server holds; ``schemes`` are webhook schemes besides Standard Webhooks
    (the peers' dialects' callbacks)."""
    secret = settings.decision_token_secret
    if secret is None:
        log.warning(
            "HANDRAIL_DECISION_TOKEN_SECRET is not set: decision links are signed with a "
            "random secret of this process and stop working when it restarts"
        )
    signers = webhook_schemes(*schemes)
    webhooks_owed, notifications_owed = Owed(), Owed()
    runtime = await open_runtime(
        settings.database_url,
        create_schema=False,  # the migrations own the schema
        prepare=_migrate,
        clock=clock,
        hooks=[
            CreatedHook(),
            IdempotencyHook(),
            OutboxHook(signers, webhooks_owed),
            NotifyHook(notifications_owed),
        ],
        wait_backstop=settings.wait_backstop,
        tokens=DecisionTokens(secret.get_secret_value()) if secret is not None else None,
        sweep_interval=None,  # started with the other background jobs
    )
    store = runtime.store
    assert isinstance(store, SqlStore)  # opened from a database URL
    engine = runtime.engine
    hub = Hub(
        settings=settings,
        runtime=runtime,
        store=store,
        auth=Authenticator(
            store, RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        ),
        blobs=LocalBlobStore(settings.upload_dir),
        delivery=DeliveryWorker(store, settings, runtime.clock, signers),
        notifications=NotificationWorker(store, engine, settings),
        webhooks_owed=webhooks_owed,
        notifications_owed=notifications_owed,
    )
    engine.observers.append(hub.observe)
    if store.dialect == "postgresql":  # revocations arrive by NOTIFY (SQLite: the key TTL)
        revocations = asyncio.create_task(hub.auth.follow(hub.waker), name="handrail-keys")
        hub.jobs.append(revocations)
    if settings.run_background:
        hub.start_background()
        sandbox_orgs = await store.run(
            lambda c: list(
                c.execute(select(api_keys.c.org_id).where(api_keys.c.sandbox).distinct()).scalars()
            ),
            readonly=True,
        )
        for org in sandbox_orgs:
            hub.ensure_sandbox(world(org, True))
    return hub


async def _migrate(store: Store) -> None:
    assert isinstance(store, SqlStore)  # open_runtime opens a database URL as one
    await migrate(store)
