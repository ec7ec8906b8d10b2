"""Webhook endpoints (admins) and each one's delivery log: the events queued for it (state,
attempts, next retry, last error) and every delivery attempt (status code, error, time).
Read with the same queries as ``GET /v1/webhooks`` and its deliveries, scoped to the
viewer's organisation; no signing secret is ever read, and URLs are shown masked (a
query string or a long path segment may be a credential)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection, func, select

from handrail import NotFound, Role

from ...._rows import aware
from ....tables import webhook_endpoints, webhook_outbox
from ....webhooks import delivery_log
from ..._nav import add_nav
from ..._render import render
from ..._route import WebRoute
from ..._viewer import ViewerDep, hub_of
from ._common import link, need

__all__ = ["masked_url", "router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Webhooks", "/org/webhooks", Role.ADMIN, order=70)

EndpointId = Annotated[str, Path(max_length=64)]
PAGE = 50
_SHOWN_SEGMENT = 16

# every column but the secret
_ENDPOINT = [c for c in webhook_endpoints.c if c.name != "secret"]


def masked_url(url: str) -> str:
    """``url`` without what may be a credential: user info, the query string, the fragment,
    and path segments longer than 16 characters (all but their last 4)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unreadable URL)"
    segments = [s if len(s) <= _SHOWN_SEGMENT else f"…{s[-4:]}" for s in parts.path.split("/")]
    shown = f"{parts.scheme}://{host}{f':{port}' if port else ''}{'/'.join(segments)}"
    return shown + ("?…" if parts.query else "")


def _endpoints(conn: Connection, org: str) -> list[dict[str, Any]]:
    counts = {
        (r.endpoint_id, r.state): r.n
        for r in conn.execute(
            select(webhook_outbox.c.endpoint_id, webhook_outbox.c.state, func.count().label("n"))
            .where(webhook_outbox.c.org_id == org)
            .group_by(webhook_outbox.c.endpoint_id, webhook_outbox.c.state)
        )
    }
    rows = conn.execute(
        select(*_ENDPOINT)
        .where(webhook_endpoints.c.org_id == org)
        .order_by(webhook_endpoints.c.created_at)
    ).all()
    return [
        aware(r)
        | {
            "shown_url": masked_url(r.url),
            "pending": counts.get((r.id, "pending"), 0),
            "delivered": counts.get((r.id, "delivered"), 0),
            "dead": counts.get((r.id, "dead"), 0),
        }
        for r in rows
    ]


@router.get("/org/webhooks")
async def endpoint_list(request: Request, viewer: ViewerDep) -> Response:
    need(viewer, Role.ADMIN)
    org = viewer.principal.org_id
    endpoints = await hub_of(request).store.run(lambda c: _endpoints(c, org), readonly=True)
    return render(request, "org/webhooks.html", {"endpoints": endpoints})


@router.get("/org/webhooks/{endpoint_id}")
async def delivery_log_page(
    request: Request,
    endpoint_id: EndpointId,
    viewer: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
) -> Response:
    """The endpoint and its log, newest first (``limit`` rows of each; more on request)."""
    need(viewer, Role.ADMIN)
    org = viewer.principal.org_id
    log = await hub_of(request).store.run(
        lambda c: delivery_log(c, org, endpoint_id, limit), readonly=True
    )
    if log is None:
        raise NotFound("webhook endpoint", endpoint_id)
    more_url = (
        link(f"/org/webhooks/{endpoint_id}", limit=min(500, limit * 4))
        if log.more and limit < 500
        else None
    )
    endpoint = log.endpoint | {"shown_url": masked_url(log.endpoint["url"])}
    return render(
        request,
        "org/webhook.html",
        {
            "endpoint": endpoint,
            "events": log.events,
            "attempts": log.attempts,
            "more": log.more,
            "more_url": more_url,
        },
    )
