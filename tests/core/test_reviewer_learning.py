"""One reviewer's concurrent decisions: every one is learned (none lost to another's
update of the reviewer's record), and none is retried for a conflict on it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from handrail import Decision, Engine, Principal, Role
from handrail.engine import _kernel
from handrail.store.sql import SqlStore

AGENT = Principal(org_id="org-a", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="org-a", id="alice", roles=frozenset({Role.REVIEWER}))
REVIEW: dict[str, Any] = {"kind": "review", "action": {"name": "send_email", "args": {}}}


async def test_concurrent_decisions_by_one_reviewer_all_count(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(store)
    first = await engine.create(AGENT, REVIEW)
    await engine.decide(ALICE, first.id, Decision.approve())  # the record exists
    tasks = [await engine.create(AGENT, REVIEW) for _ in range(32)]
    retried: list[int] = []
    real = _kernel.backoff

    async def counting(attempt: int) -> None:
        retried.append(attempt)
        await real(attempt)

    monkeypatch.setattr(_kernel, "backoff", counting)
    decided = await asyncio.gather(
        *(
            engine.decide(ALICE, t.id, Decision.approve() if n % 2 else Decision.reject("no"))
            for n, t in enumerate(tasks)
        )
    )
    assert all(t.decision is not None for t in decided)
    assert retried == []
    (stats,) = await engine.worker_stats(ALICE, "alice")
    assert (stats.answers, stats.agreed, stats.disagreed) == (33, 33, 0)
    assert stats.version == 33
    assert len(stats.durations) == 33
    assert sum(stats.labels.values()) == 33 and stats.labels.keys() == {"approve", "reject"}
