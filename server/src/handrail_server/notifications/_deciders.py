"""Who an email's decision link or a Slack click decides as, checked before anything is
written (``routes.integrations``).

A link names its reviewer in a signed decision token; a click names a Slack user, whom the
organisation's contacts map to a reviewer. Either way the reviewer must still hold a live
reviewer (or admin) key: a revoked reviewer's old links and buttons decide nothing.
"""

from __future__ import annotations

from datetime import datetime

from handrail import Principal, Task
from handrail.errors import NotFound, TokenRejected
from handrail.store.sql import SqlStore
from handrail.tokens import DecisionTokens

from ..keys import decider_key

__all__ = ["decider", "read_link"]


async def decider(store: SqlStore, org_id: str, reviewer: str) -> Principal | None:
    """The principal ``reviewer`` decides as: from a live reviewer (or admin) key of
    ``org_id``; None when it has none (revoked, or never a reviewer)."""
    key = await store.run(lambda c: decider_key(c, org_id, reviewer), readonly=True)
    return key.as_principal() if key is not None else None


async def read_link(
    store: SqlStore, tokens: DecisionTokens | None, now: datetime, task_id: str, token: str
) -> tuple[Task, str]:
    """The task a link is for and the reviewer it names, after the checks that need no
    write: a genuine, unexpired, unspent token for this task, naming a reviewer who still
    has a live key. Raises ``TokenRejected`` (``NotFound`` when the task is gone)."""
    if tokens is None:
        raise TokenRejected("unavailable", "no decision-token secret")
    claims = tokens.read(token, now)
    if claims.task_id != task_id:
        raise TokenRejected("wrong_task", "this decision token is for another task")
    async with store.transaction(readonly=True) as tx:
        spent = await tx.token_spent(claims.id)
        task = await tx.get_task(claims.org_id, claims.task_id)
    if spent:
        raise TokenRejected("used", "this decision token was used already")
    if task is None:
        raise NotFound("task", task_id)
    if await decider(store, claims.org_id, claims.reviewer_id) is None:
        raise TokenRejected("revoked", f"{claims.reviewer_id} has no live reviewer key")
    return task, claims.reviewer_id
