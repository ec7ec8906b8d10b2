"""The requester's and admin's views: the organisation's tasks, the manual-review queue,
disputes, money, workers and webhook endpoints, under ``/org``.

Each module has its own router; ``router`` here includes them all, so the UI lists this
package once in ``PAGES``. Every handler calls the engine, the ledger or the same queries
as the API, as the signed-in principal: the engine's role checks apply, and each page
also refuses roles it is not for (403).
"""

from __future__ import annotations

from fastapi import APIRouter

from ..._route import WebRoute
from . import disputes, money, review, tasks, webhooks, workers

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
for _module in (tasks, review, disputes, money, workers, webhooks):
    router.include_router(_module.router)
