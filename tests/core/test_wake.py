"""Notifiers: wake-ups within a loop, across threads and loops, and across processes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import asyncpg
import pytest

from handrail import ChangeFeedWaker, Engine, LocalWaker, Principal, Role
from handrail.store.sql import SqlStore
from handrail.wake import org_channel, task_channel

AGENT = Principal(org_id="o", id="agent", roles=frozenset({Role.REQUESTER}))


async def test_a_publication_before_the_wait_is_not_lost() -> None:
    waker = LocalWaker()
    async with waker.subscribe(["a"]) as sub:
        await waker.publish(["b"])
        assert not await sub.wait(0.01)
        await waker.publish(["a", "b"])
        assert await sub.wait(0)  # it came before we waited
        assert not await sub.wait(0.01)  # and was consumed
    assert waker.subscriber_count == 0


async def test_cancel_wins_over_a_simultaneous_wake_up() -> None:
    waker = LocalWaker()
    sub = waker.subscribe(["a"])
    waiter = asyncio.create_task(sub.wait(10))
    await asyncio.sleep(0)  # the waiter is parked
    waker.publish_now(["a"])
    waiter.cancel()  # in the same step as the wake-up: the cancel must not be lost
    with pytest.raises(asyncio.CancelledError):
        await waiter
    sub.close()


async def test_publishing_from_another_thread_wakes_this_loop() -> None:
    waker = LocalWaker()
    async with waker.subscribe(["x"]) as sub:
        threading.Thread(target=waker.publish_now, args=(["x"],)).start()
        assert await sub.wait(5)


def test_publishing_into_a_closed_loop_is_harmless() -> None:
    waker = LocalWaker()

    async def subscribe() -> None:
        waker.subscribe(["x"])  # never closed: its loop ends first

    asyncio.run(subscribe())
    waker.publish_now(["x"])


async def test_the_change_feed_carries_other_processes_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    ours, theirs = await SqlStore.open(url), await SqlStore.open(url)
    feed = await ChangeFeedWaker.open(ours, interval=0.005)
    writer = Engine(theirs)  # another process, as far as `feed` can tell
    try:
        async with feed.subscribe([org_channel("o")]) as org_sub:
            task = await writer.create(AGENT, {"kind": "review", "action": {"name": "x"}})
            assert await org_sub.wait(5)
            async with feed.subscribe([task_channel(task.id)]) as task_sub:
                await writer.cancel(AGENT, task.id)
                assert await task_sub.wait(5)
        # idle now; a change made meanwhile is still seen by the next subscriber
        await asyncio.sleep(0.05)
        await writer.create(AGENT, {"kind": "review", "action": {"name": "y"}})
        async with feed.subscribe([org_channel("o")]) as late:
            assert await late.wait(5)
    finally:
        await feed.aclose()
        await ours.close()
        await theirs.close()


@pytest.mark.postgres
async def test_postgres_publishing_never_waits_and_shares_notifies(postgres_url: str) -> None:
    """A writer's publish returns without a round trip (its local waiters are woken at once);
    what many writers publish together reaches the other process in fewer NOTIFYs than
    publications, and every channel gets there."""
    from handrail.wake.postgres import PostgresWaker, asyncpg_dsn  # noqa: PLC0415

    channel = f"handrail_test_{uuid.uuid4().hex[:8]}"
    here = await PostgresWaker.open(postgres_url, channel=channel)
    there = await PostgresWaker.open(postgres_url, channel=channel)
    counter = await asyncpg.connect(asyncpg_dsn(postgres_url))
    notifies: list[str] = []
    await counter.add_listener(channel, lambda *args: notifies.append(args[-1]))
    try:
        names = [task_channel(f"t{i}") for i in range(50)]
        async with there.subscribe(names[-1:]) as far, here.subscribe(names[:1]) as near:
            publishing = here.publish([names[0]])
            with pytest.raises(StopIteration):  # it finished without suspending: no I/O
                publishing.send(None)
            assert await near.wait(0)
            await asyncio.gather(*(here.publish([name]) for name in names))
            assert await far.wait(10)
        deadline = asyncio.get_running_loop().time() + 10
        while len({c for n in notifies for c in n.split()}) < len(names):
            assert asyncio.get_running_loop().time() < deadline, notifies
            await asyncio.sleep(0.01)
        assert len(notifies) <= 3, notifies  # 51 publications
    finally:
        await counter.close()
        await here.aclose()
        await there.aclose()
