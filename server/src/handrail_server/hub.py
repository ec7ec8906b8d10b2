"""The hub: everything a running server holds, built at start and closed at stop.

One store, one engine with its ledger escrow and its webhook and notification outboxes, a
waker that reaches every process on the database (LISTEN/NOTIFY on PostgreSQL, the
change feed on SQLite), the authenticator, and the background jobs: SLA sweeps (with
escalations) and settlement, webhook delivery, notifications (email, Slack), and simulated
reviewers for sandbox organisations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from handrail import ChangeFeedWaker, Engine, SandboxReviewer, Task, Waker
from handrail.clock import Clock, SystemClock
from handrail.ledger import Ledger, LedgerEscrow
from handrail.sla import SlaScheduler
from handrail.store.sql import SqlStore
from handrail.tokens import DecisionTokens
from handrail.wake.postgres import PostgresWaker

from .auth import Authenticator, RateLimiter
from .blobs import BlobStore, LocalBlobStore
from .migrate import migrate
from .notifications import NotificationWorker, NotifyHook
from .settings import Settings
from .tables import api_keys
from .webhooks import DeliveryWorker, OutboxHook, Scheme
from .webhooks import schemes as webhook_schemes

__all__ = ["Hub", "open_hub"]

log = logging.getLogger(__name__)


@dataclass
class Hub:
    settings: Settings
    store: SqlStore
    waker: Waker
    engine: Engine
    ledger: Ledger
    auth: Authenticator
    blobs: BlobStore
    clock: Clock
    delivery: DeliveryWorker
    notifications: NotificationWorker
    jobs: list[asyncio.Task[Any]] = field(default_factory=list)
    sandboxes: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start_background(self) -> None:
        self.jobs.append(asyncio.create_task(self._sweep(), name="handrail-sla"))
        self.jobs.append(asyncio.create_task(self.delivery.run(), name="handrail-webhooks"))
        self.jobs.append(
            asyncio.create_task(self.notifications.run(), name="handrail-notifications")
        )

    async def _sweep(self) -> None:
        sla = SlaScheduler(self.engine)
        while True:
            try:
                await sla.tick()
                await self.ledger.settle_due()
            except Exception:
                log.exception("the SLA sweep failed; trying again")
            await asyncio.sleep(self.settings.sla_interval)

    def observe(self, before: Task | None, after: Task) -> None:
        """After each commit: sandbox tasks get simulated reviewers; webhooks and
        notifications are sent."""
        self.delivery.poke()
        self.notifications.poke()
        if after.sandbox and self.settings.run_background:
            self.ensure_sandbox(after.org_id)

    def ensure_sandbox(self, org_id: str) -> None:
        job = self.sandboxes.get(org_id)
        if job is None or job.done():
            reviewer = SandboxReviewer(reviewer_id="sandbox")
            self.sandboxes[org_id] = asyncio.get_running_loop().create_task(
                reviewer.run(self.engine, org_id), name=f"handrail-sandbox-{org_id}"
            )

    async def close(self) -> None:
        for job in [*self.jobs, *self.sandboxes.values()]:
            job.cancel()
        for job in [*self.jobs, *self.sandboxes.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        await self.delivery.aclose()
        await self.notifications.aclose()
        await self.engine.aclose()


async def open_hub(
    settings: Settings, *, clock: Clock | None = None, schemes: Sequence[Scheme] = ()
) -> Hub:
    """Everything a server holds; ``schemes`` are webhook schemes besides Standard Webhooks
    (the peers' dialects' callbacks)."""
    store = await SqlStore.open(settings.database_url, create=False)
    try:
        await migrate(store)
        waker: Waker
        if store.dialect == "postgresql":
            waker = await PostgresWaker.open(settings.database_url)
        else:
            waker = await ChangeFeedWaker.open(store)
    except BaseException:
        await store.close()
        raise
    clock = clock or SystemClock()
    ledger = Ledger(store, clock=clock)
    signers = webhook_schemes(*schemes)
    delivery = DeliveryWorker(store, settings, clock, signers)
    secret = settings.decision_token_secret
    if secret is None:
        log.warning(
            "HANDRAIL_DECISION_TOKEN_SECRET is not set: decision links are signed with a "
            "random secret of this process and stop working when it restarts"
        )
    tokens = DecisionTokens(
        secret.get_secret_value() if secret is not None else secrets.token_bytes(32)
    )
    engine = Engine(
        store,
        waker=waker,
        clock=clock,
        escrow=LedgerEscrow(ledger),
        hooks=[OutboxHook(signers), NotifyHook()],
        wait_backstop=settings.wait_backstop,
        tokens=tokens,
    )
    hub = Hub(
        settings=settings,
        store=store,
        waker=waker,
        engine=engine,
        ledger=ledger,
        auth=Authenticator(
            store, RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        ),
        blobs=LocalBlobStore(settings.upload_dir),
        clock=clock,
        delivery=delivery,
        notifications=NotificationWorker(store, engine, settings),
    )
    engine.observers.append(hub.observe)
    if settings.run_background:
        hub.start_background()
        sandbox_orgs = await store.run(
            lambda c: list(
                c.execute(select(api_keys.c.org_id).where(api_keys.c.sandbox).distinct()).scalars()
            ),
            readonly=True,
        )
        for org in sandbox_orgs:
            hub.ensure_sandbox(org)
    return hub
