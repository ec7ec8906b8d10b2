"""The composition root and the one sweep loop (``handrail.runtime``): what a running
Handrail is built from, and sweeps that log a failing round and go on.

``Handrail.local`` and the server's hub both run on :func:`open_runtime`; the server's side
is in ``tests/server/test_sweeps.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from handrail import Engine, Handrail, ManualClock, MemoryStore, Principal, Role, Status
from handrail.ledger import Ledger, LedgerEscrow
from handrail.runtime import open_runtime, run_sweeps
from handrail.store import Store
from handrail.store.sql import SqlStore
from handrail.wake import ChangeFeedWaker, LocalWaker
from tests.postgres import fresh_database

ORG = "org-a"
AGENT = Principal(org_id=ORG, id="agent", roles=frozenset({Role.REQUESTER}))
YESNO = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
SPEC: dict[str, Any] = {"kind": "judgment", "output_schema": YESNO, "sla_seconds": 60}
SWEEPS_LOGGER = "handrail.runtime"


class FailsInSweeps(ManualClock):
    """A manual clock that raises (a ``RuntimeError``, not a ``HandrailError``) the next
    ``failures`` times the sweep loop reads it, and only there: requests and other
    background jobs read it as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def now(self) -> datetime:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no loop in this thread
            task = None
        if task is not None and task.get_name() == "handrail-sweeps" and self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the clock broke, once")
        return super().now()


async def eventually(check: Callable[[], Awaitable[bool]], rounds: int = 1000) -> None:
    """Poll ``check`` every 10 ms (the sweeps run on their own clock of wall time)."""
    for _ in range(rounds):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it never happened: the sweeps stopped")


def sweep_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == SWEEPS_LOGGER and r.levelno == logging.ERROR and r.exc_info is not None
    ]


# ---------------------------------------------------------------- the sweep loop


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def parts(clock: ManualClock) -> tuple[Engine, Ledger]:
    store = MemoryStore()
    ledger = Ledger(store, clock=clock)
    return Engine(store, clock=clock, escrow=LedgerEscrow(ledger)), ledger


async def test_a_failing_round_is_logged_and_the_next_round_expires(
    parts: tuple[Engine, Ledger], clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine, ledger = parts
    task = await engine.create(AGENT, SPEC)
    real, calls = engine.expire_due, 0

    async def broken_once() -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database blinked")
        return await real()

    engine.expire_due = broken_once  # type: ignore[method-assign]
    clock.advance(61)
    sweeps = asyncio.create_task(run_sweeps(engine, ledger, interval=0.01))

    async def expired() -> bool:
        return (await engine.get(AGENT, task.id)).status is Status.EXPIRED

    await eventually(expired)
    (failure,) = sweep_failures(caplog)
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError
    assert "SLA sweep" in failure.getMessage()
    assert calls >= 2
    sweeps.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sweeps
    assert sweeps.cancelled()


async def test_a_failing_sla_step_does_not_starve_settlement(
    parts: tuple[Engine, Ledger], caplog: pytest.LogCaptureFixture
) -> None:
    engine, ledger = parts
    settled, reconciled = 0, 0

    async def always_broken() -> list[Any]:
        raise RuntimeError("broken for good")

    async def settle(limit: int = 500) -> list[Any]:
        nonlocal settled
        settled += 1
        return []

    async def reconcile(limit: int = 100) -> list[Any]:
        nonlocal reconciled
        reconciled += 1
        return []

    engine.expire_due = always_broken  # type: ignore[method-assign]
    ledger.settle_due = settle  # type: ignore[method-assign]
    ledger.reconcile_payouts = reconcile  # type: ignore[method-assign]
    sweeps = asyncio.create_task(run_sweeps(engine, ledger, interval=0.01))

    async def three_rounds() -> bool:
        return settled >= 3

    await eventually(three_rounds)
    sweeps.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sweeps
    assert reconciled == 1  # pending payouts are recovered once, on start
    assert len(sweep_failures(caplog)) >= 3  # every round says so, none stops the loop


@pytest.mark.parametrize("interval", [0.0, -1.0])
async def test_the_interval_must_be_positive(parts: tuple[Engine, Ledger], interval: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        await run_sweeps(*parts, interval=interval)


# ---------------------------------------------------------------- open_runtime


async def test_in_memory_one_clock_serves_every_part(clock: ManualClock) -> None:
    async with await open_runtime(clock=clock, sweep_interval=None) as runtime:
        assert isinstance(runtime.store, MemoryStore)
        assert isinstance(runtime.waker, LocalWaker)
        assert runtime.engine.clock is runtime.ledger.clock is runtime.clock is clock
        assert runtime.engine.store is runtime.ledger.store is runtime.store
        assert runtime.engine.tokens is not None  # a random secret of this process
        assert not runtime.sweeping


async def test_the_runtime_sweeps_and_stops_on_close(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailsInSweeps()
    runtime = await open_runtime(clock=failing, sweep_interval=0.01)
    try:
        assert runtime.sweeping
        with pytest.raises(RuntimeError, match="already running"):
            runtime.start_sweeps(0.01)
        task = await runtime.engine.create(AGENT, SPEC)
        failing.failures = 1
        failing.advance(61)

        async def expired() -> bool:
            return (await runtime.engine.get(AGENT, task.id)).status is Status.EXPIRED

        await eventually(expired)
        assert failing.failures == 0 and len(sweep_failures(caplog)) == 1
    finally:
        await runtime.aclose()
    assert not runtime.sweeping


async def test_a_sqlite_file_gets_a_change_feed_waker_and_keeps_its_tasks(
    tmp_path: Path,
) -> None:
    db = tmp_path / "handrail.db"
    async with await open_runtime(db, sweep_interval=None) as first:
        assert isinstance(first.store, SqlStore) and first.store.dialect == "sqlite"
        assert isinstance(first.waker, ChangeFeedWaker)
        task = await first.engine.create(AGENT, SPEC)
    async with await open_runtime(f"sqlite:///{db}", sweep_interval=None) as second:
        assert (await second.engine.get(AGENT, task.id)).id == task.id


async def test_a_string_that_is_no_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"pathlib\.Path"):
        await open_runtime("handrail.db")


async def test_prepare_runs_first_and_a_failure_leaves_a_given_store_open() -> None:
    seen: list[Store] = []

    async def prepare(store: Store) -> None:
        seen.append(store)
        raise RuntimeError("migration failed")

    given = MemoryStore()
    with pytest.raises(RuntimeError, match="migration failed"):
        await open_runtime(given, prepare=prepare)
    assert seen == [given]
    async with await open_runtime(given, sweep_interval=None) as runtime:
        assert runtime.store is given  # still usable: the caller's, not closed


@pytest.mark.postgres
async def test_postgresql_gets_listen_notify(postgres_url: str) -> None:
    from handrail.wake.postgres import PostgresWaker  # noqa: PLC0415

    async with fresh_database(postgres_url) as url:
        runtime = await open_runtime(url, sweep_interval=None)
        try:
            assert isinstance(runtime.waker, PostgresWaker)
            task = await runtime.engine.create(AGENT, SPEC)
            assert (await runtime.engine.get(AGENT, task.id)).status is Status.POSTED
        finally:
            await runtime.aclose()


# ---------------------------------------------------------------- Handrail.local


def test_handrail_local_sweeps_through_the_same_loop(caplog: pytest.LogCaptureFixture) -> None:
    """A sweep round that raises something other than a ``HandrailError`` is logged and the
    sweeps go on (the local client's own loop used to die on it)."""
    clock = FailsInSweeps()
    with Handrail.local(clock=clock, sweep_interval=0.01) as hr:
        task = hr.tasks.create(SPEC)
        clock.failures = 1
        clock.advance(61)
        deadline = time.monotonic() + 10
        while hr.tasks.get(task.id).status is not Status.EXPIRED:
            assert time.monotonic() < deadline, "the sweeps stopped"
            time.sleep(0.01)
    assert clock.failures == 0
    (failure,) = sweep_failures(caplog)
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError


def test_no_second_sweep_loop_hides_in_the_client() -> None:
    import handrail.client._handrail as client  # noqa: PLC0415

    assert not hasattr(client, "_sweep")
    assert client.open_runtime is open_runtime
