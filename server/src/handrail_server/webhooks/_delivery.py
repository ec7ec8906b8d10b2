"""Delivery: signed, at least once, with the Standard Webhooks retry schedule.

Due rows are leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so of several server
processes exactly one takes each row); a lease left by a dead process runs out and the row
is taken again. Each attempt is logged. A 2xx delivers; a 410 disables the endpoint; other
answers and errors retry after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h
(with a little jitter, and never sooner than a ``Retry-After``), then give up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, and_, insert, update

from handrail.clock import Clock, utc
from handrail.ids import new_id
from handrail.store.sql import SqlStore

from .._leases import OutboxWorker, lease_due
from ..settings import Settings
from ..tables import webhook_deliveries, webhook_endpoints, webhook_outbox
from ._guard import UnsafeTarget, check_target
from ._schemes import STANDARD, Scheme

__all__ = ["SCHEDULE", "DeliveryWorker"]

log = logging.getLogger(__name__)
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)  # seconds, per attempt


def _lease_due(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    columns = (
        webhook_endpoints.c.url,
        webhook_endpoints.c.secret,
        webhook_endpoints.c.enabled,
        webhook_endpoints.c.scheme,
    )
    return lease_due(
        conn,
        webhook_outbox,
        webhook_endpoints,
        webhook_endpoints.c.id == webhook_outbox.c.endpoint_id,
        columns,
        now,
        limit,
    )


def _record(
    conn: Connection,
    row: dict[str, Any],
    now: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    retry_after: float | None,
) -> str:
    attempts = row["attempts"] + 1
    conn.execute(
        insert(webhook_deliveries),
        [
            {
                "id": new_id(),
                "outbox_id": row["id"],
                "endpoint_id": row["endpoint_id"],
                "attempt": attempts,
                "status_code": status_code,
                "error": error,
                "duration_ms": duration_ms,
                "at": now,
            }
        ],
    )
    changes: dict[str, Any] = {"attempts": attempts, "lease_until": None, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        changes.update(state="delivered", delivered_at=now)
    elif status_code == 410 or attempts >= len(SCHEDULE) or not row["enabled"]:
        changes["state"] = "dead"
        if status_code == 410:  # the receiver is gone for good
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == row["endpoint_id"])
                .values(enabled=False)
            )
    else:
        delay = SCHEDULE[attempts] * random.uniform(0.9, 1.1)
        changes["next_attempt_at"] = now + timedelta(seconds=max(delay, retry_after or 0))
    conn.execute(
        update(webhook_outbox)
        .where(and_(webhook_outbox.c.id == row["id"], webhook_outbox.c.state == "pending"))
        .values(**changes)
    )
    return str(changes.get("state", "pending"))


class DeliveryWorker(OutboxWorker):
    """Sends due outbox rows, each signed by its endpoint's scheme (``schemes``, by name;
    Standard Webhooks when not given)."""

    what = "webhook delivery"

    def __init__(
        self,
        store: SqlStore,
        settings: Settings,
        clock: Clock,
        schemes: Mapping[str, Scheme] | None = None,
    ) -> None:
        super().__init__(store, clock)
        self.settings = settings
        self.schemes = dict(schemes or {STANDARD.name: STANDARD})
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout, follow_redirects=False, trust_env=False
        )

    def _lease(self, conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
        return _lease_due(conn, now, limit)

    async def _send(self, row: dict[str, Any]) -> None:
        body = json.dumps(row["payload"], separators=(",", ":"))
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        started = time.perf_counter()
        try:
            if not row["enabled"]:
                raise UnsafeTarget("the endpoint is disabled")
            scheme = self.schemes.get(row["scheme"])
            if scheme is None:
                raise UnsafeTarget(f"unknown webhook scheme {row['scheme']!r}")
            response = await self.post(scheme, row["url"], row["secret"], row["id"], body)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", ""))
        except (httpx.HTTPError, httpx.InvalidURL, UnsafeTarget, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        now = self.clock.now()
        await self.store.run(lambda c: _record(c, row, now, status, error, elapsed, retry_after))

    async def post(
        self, scheme: Scheme, url: str, secret: str, event_id: str, body: str
    ) -> httpx.Response:
        """Send one signed body to ``url`` (checked against the SSRF guard first); raises
        ``UnsafeTarget`` or ``httpx.HTTPError`` when it cannot be sent."""
        await check_target(url, allow_private=self.settings.allow_private_webhooks)
        sent_at = utc(self.clock.now())
        headers = {
            "content-type": "application/json",
            "user-agent": "handrail-webhooks/1",
            **scheme.headers(secret, event_id, sent_at, body),
        }
        return await self._client.post(url, content=body, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()
