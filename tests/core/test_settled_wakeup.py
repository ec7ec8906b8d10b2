"""A waiter woken by this process's own commit answers with the task that commit settled,
without reading it again; a settled copy older than what the waiter last read is never
answered (another process moved the task on since)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from handrail import Decision, Engine, Principal, Role, Status
from handrail.store import MemoryStore, Store
from handrail.store.sql import SqlStore
from handrail.wake import LocalWaker

AGENT = Principal(org_id="org-a", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="org-a", id="alice", roles=frozenset({Role.REVIEWER}))
ADMIN = Principal(org_id="org-a", id="admin", roles=frozenset({Role.ADMIN}))
REVIEW: dict[str, Any] = {"kind": "review", "action": {"name": "send_email", "args": {}}}


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made: Store = (
        MemoryStore()
        if request.param == "memory"
        else await SqlStore.open(f"sqlite:///{tmp_path / 'settled.db'}")
    )
    yield made
    await made.close()


def count_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for each read-only transaction ``store`` opens."""
    reads: list[int] = []
    real = store.transaction

    def counting(*, readonly: bool = False) -> AbstractAsyncContextManager[Any]:
        if readonly:
            reads.append(1)
        return real(readonly=readonly)

    monkeypatch.setattr(store, "transaction", counting)
    return reads


async def parked(engine: Engine, task_id: str) -> asyncio.Task[Any]:
    waiter = asyncio.create_task(engine.wait(AGENT, task_id, timeout=30))
    for _ in range(20):
        await asyncio.sleep(0.01)  # its first read done, it waits for a notification
    assert not waiter.done()
    return waiter


async def test_a_waiter_woken_by_a_local_decision_reads_nothing_more(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(store)
    task = await engine.create(AGENT, REVIEW)
    waiters = [await parked(engine, task.id) for _ in range(3)]
    reads = count_reads(store, monkeypatch)
    decided = await engine.decide(ALICE, task.id, Decision.reject("not today"))
    answered = await asyncio.gather(*waiters)
    assert [t.status for t in answered] == [Status.VERIFIED] * 3
    assert {t.version for t in answered} == {decided.version}
    assert answered[0].decision is not None and answered[0].decision.message == "not today"
    assert reads == []


async def test_an_older_settled_copy_is_not_answered(store: Store) -> None:
    waker = LocalWaker()  # two engines, one store: two processes, as far as caches go
    here, there = Engine(store, waker=waker), Engine(store, waker=waker)
    task = await here.create(AGENT, REVIEW)
    await here.decide(ALICE, task.id, Decision.approve())  # here keeps the verified copy
    disputed = await there.dispute(AGENT, task.id, "that was the wrong account")
    assert disputed.status is Status.DISPUTED
    waiter = await parked(here, task.id)  # it read the dispute, newer than its copy
    overturned = await there.resolve_dispute(ADMIN, task.id, uphold=False, reason="wrong")
    answered = await waiter
    assert answered.status is Status.FAILED and answered.version == overturned.version
