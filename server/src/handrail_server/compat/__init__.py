"""The peers' APIs, spoken by Handrail: HumanRail (``/compat/humanrail/v1``), Humancheck
(``/compat/humancheck``) and HumanOps (``/compat/humanops/api/v1``).

Each is a thin translation over the same engine, ledger and store: it maps its fields,
statuses, errors and keys to Handrail's and back, and its callbacks are sent by the same
webhook outbox, signed in the dialect's own way.
"""

from __future__ import annotations

from fastapi import FastAPI

from ..webhooks import Scheme
from . import humancheck, humanops, humanrail

__all__ = ["SCHEMES", "install"]

SCHEMES: tuple[Scheme, ...] = (humanrail.SCHEME, humanops.SCHEME)
"""How the dialects' callbacks look and are signed."""


def install(app: FastAPI) -> None:
    """Serve the three dialects from ``app``."""
    for router in (humanrail.router, humanrail.health, humancheck.router, humanops.router):
        app.include_router(router)
