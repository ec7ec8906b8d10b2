"""A running Handrail, composed in one place: store, waker, clock, ledger, engine and the
sweep loop.

``Handrail.local`` (in process) and the server's hub both build their core through
:func:`open_runtime`, so the two cannot drift apart on how the pieces fit together (which
waker goes with which store, one clock shared by the engine and the ledger, escrow held in
the ledger) or on how the background sweeps behave. What only a server has (migrations,
webhooks, notifications, settings) stays in the server; core reads no environment or
configuration file: everything comes in as an argument.

:func:`run_sweeps` is *the* sweep loop, the only one: every ``interval`` seconds it enforces
SLAs (deadlines, backups, escalations: :meth:`SlaScheduler.tick`) and settles earnings whose
hold period is over; its first round also finishes payouts whose outcome a crashed process
never recorded. A failing step is logged and the loop goes on: a sweep that died would let
deadlines pass silently, which is worse than a noisy log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from .clock import Clock, SystemClock
from .engine import Engine
from .hooks import Hook
from .ledger import FeeSchedule, Ledger, LedgerEscrow, PayoutRail
from .sla import SlaScheduler
from .store import MemoryStore, Store
from .tokens import DecisionTokens
from .verification import Verifier
from .wake import ChangeFeedWaker, LocalWaker, Waker

__all__ = ["Runtime", "open_runtime", "run_sweeps"]

log = logging.getLogger(__name__)


async def run_sweeps(engine: Engine, ledger: Ledger, *, interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled.

    Each round expires or re-routes tasks past their deadline, adds backups, escalates
    reviews nobody took (one :meth:`SlaScheduler.tick`), then settles due earnings. The
    first round also reconciles payouts left pending (a crash between the rail's call and
    its answer; rails are idempotent by payout id). Each step is guarded on its own: an
    exception is logged with its traceback and the next step and round still run, so one
    bad round (a database blip, a bug in a hook) never stops the sweeps. Cancellation
    passes through at once.
    """
    if not interval > 0:
        raise ValueError("the sweep interval must be a positive number of seconds")
    sla = SlaScheduler(engine)
    first = True
    while True:
        if first:
            await _step("payout reconciliation", ledger.reconcile_payouts)
            first = False
        await _step("SLA sweep", sla.tick)
        await _step("settlement sweep", ledger.settle_due)
        await asyncio.sleep(interval)


async def _step(name: str, run: Callable[[], Awaitable[object]]) -> None:
    try:
        await run()
    except Exception:
        log.exception("the %s failed; the next round tries again", name)


@dataclass(eq=False)
class Runtime:
    """The core of a running Handrail. It owns every piece: :meth:`aclose` stops the
    sweeps and closes the engine, which closes the waker and the store."""

    store: Store
    waker: Waker
    clock: Clock
    ledger: Ledger
    engine: Engine
    _sweeps: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    @property
    def sweeping(self) -> bool:
        """Whether the sweep loop is running."""
        return self._sweeps is not None and not self._sweeps.done()

    def start_sweeps(self, interval: float) -> None:
        """Start :func:`run_sweeps` on the running loop (the loop that closes the runtime).
        Starting it twice is an error: two loops would only race each other."""
        if not interval > 0:
            raise ValueError("the sweep interval must be a positive number of seconds")
        if self.sweeping:
            raise RuntimeError("the sweeps are already running")
        self._sweeps = asyncio.get_running_loop().create_task(
            run_sweeps(self.engine, self.ledger, interval=interval), name="handrail-sweeps"
        )

    async def stop_sweeps(self) -> None:
        """Cancel the sweep loop and wait until it has stopped (a no-op if none runs)."""
        job, self._sweeps = self._sweeps, None
        if job is None:
            return
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job

    async def aclose(self) -> None:
        try:
            await self.stop_sweeps()
        finally:
            await self.engine.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def open_runtime(
    store: Store | str | Path | None = None,
    *,
    create_schema: bool = True,
    prepare: Callable[[Store], Awaitable[None]] | None = None,
    waker: Waker | None = None,
    clock: Clock | None = None,
    verifier: Verifier | None = None,
    hooks: Sequence[Hook] = (),
    tokens: DecisionTokens | None = None,
    fees: FeeSchedule | None = None,
    hold_period: timedelta = timedelta(days=7),
    payout_rail: PayoutRail | None = None,
    wait_backstop: float = 5.0,
    sweep_interval: float | None = 1.0,
) -> Runtime:
    """Build a running Handrail's core and, with a ``sweep_interval``, start its sweeps.

    ``store`` is a :class:`Store`, a database URL (``sqlite:///path`` or
    ``postgresql://...``, the ``sql`` extra), a :class:`Path` to a SQLite file, or ``None``
    for memory. A store opened here gets its missing tables with ``create_schema``; then
    ``prepare(store)`` runs before anything reads it (the server migrates its schema
    there). If opening fails, what was opened here is closed again; once it returns, the
    runtime owns everything, the given store and waker too.

    Without a ``waker``: on PostgreSQL opened from a URL, a ``PostgresWaker`` (LISTEN and
    NOTIFY reach every process; the ``postgres`` extra); on any other SQL store, a
    ``ChangeFeedWaker`` (changes other processes commit wake waiters too); in memory, a
    ``LocalWaker``. One ``clock`` (default: the system's) serves the engine, the ledger and
    the sweeps. The engine holds paid tasks' money in the ledger (``fees``,
    ``hold_period``, ``payout_rail``); ``tokens`` signs decision tokens (default: a random
    secret of this process, so links die with it). ``verifier``, ``hooks`` and
    ``wait_backstop`` go to the :class:`Engine`. ``sweep_interval=None`` starts no sweeps
    (:meth:`Runtime.start_sweeps` can, later).
    """
    opened, url = await _open_store(store, create_schema=create_schema)
    try:
        if prepare is not None:
            await prepare(opened)
        if waker is None:
            waker = await _open_waker(opened, url)
    except BaseException:
        if opened is not store:
            await opened.close()
        raise
    clock = clock or SystemClock()
    ledger = Ledger(
        opened, clock=clock, fees=fees, hold_period=hold_period, payout_rail=payout_rail
    )
    engine = Engine(
        opened,
        waker=waker,
        clock=clock,
        verifier=verifier,
        escrow=LedgerEscrow(ledger),
        hooks=hooks,
        wait_backstop=wait_backstop,
        tokens=DecisionTokens(secrets.token_bytes(32)) if tokens is None else tokens,
    )
    runtime = Runtime(store=opened, waker=waker, clock=clock, ledger=ledger, engine=engine)
    if sweep_interval is not None:
        try:
            runtime.start_sweeps(sweep_interval)
        except BaseException:
            await runtime.aclose()
            raise
    return runtime


async def _open_store(
    store: Store | str | Path | None, *, create_schema: bool
) -> tuple[Store, str | None]:
    """The store, and the URL it was opened from (``None`` when it was given or is in
    memory)."""
    if store is None:
        return MemoryStore(), None
    if isinstance(store, Path):
        url = f"sqlite:///{store}"
    elif isinstance(store, str):
        if "://" not in store:
            raise ValueError(
                f"{store!r} is not a database URL (sqlite:///path, postgresql://...): "
                "pass a pathlib.Path for a SQLite file"
            )
        url = store
    else:
        return store, None
    from .store.sql import SqlStore  # noqa: PLC0415 - SQLAlchemy loads only when used

    return await SqlStore.open(url, create=create_schema), url


async def _open_waker(store: Store, url: str | None) -> Waker:
    if isinstance(store, MemoryStore):
        return LocalWaker()
    try:
        from .store.sql import SqlStore  # noqa: PLC0415 - SQLAlchemy loads only when used
    except ImportError:  # then no SQL store exists: the store is this process's own
        return LocalWaker()
    if not isinstance(store, SqlStore):
        return LocalWaker()
    if store.dialect == "postgresql" and url is not None:
        from .wake.postgres import PostgresWaker  # noqa: PLC0415 - needs the postgres extra

        return await PostgresWaker.open(url)
    return await ChangeFeedWaker.open(store)
