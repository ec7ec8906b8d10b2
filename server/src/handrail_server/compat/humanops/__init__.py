"""HumanOps' REST API (humanops.io/docs), under ``/compat/humanops/api/v1``.

A HumanOps task is a Handrail judgment task whose answer is the proof (``photos``,
``notes``, ``confirmation_text``, ``reference_url``, ``encrypted_credential``), checked by
Handrail's verification pipeline (HumanOps' "AI Guardian"). Live tasks want an estimate
first (an operator accepts with one, the agent approves it). Sandbox tasks do not: the
simulated operator takes and answers them at once, and, as in HumanOps, they escrow
nothing. Agents send ``X-API-Key``; operators send their reviewer key in ``X-API-Key``,
``Authorization: Bearer`` or ``X-Operator-Id``. Amounts are US dollars; a live task's
escrow is the ledger's hold (reward + platform fee).

====================  ==================
Handrail status       HumanOps status
====================  ==================
posted                PENDING
estimate_pending      ESTIMATE_PENDING
assigned              ACCEPTED
submitted             SUBMITTED
manual_review         MANUAL_REVIEW
verified              COMPLETED
failed, disputed      DISPUTED
cancelled             CANCELLED
expired               EXPIRED
====================  ==================
"""

from __future__ import annotations

from .. import _dialect
from . import agents, operators, tasks  # noqa: F401 - their routes join ``router``
from ._common import render, router, status_of, to_task
from ._scheme import SCHEME, HumanOpsScheme

__all__ = ["SCHEME", "HumanOpsScheme", "router", "status_of", "to_task"]

_dialect.close_router(router, render)  # after every route: unknown paths answer in HumanOps' words
