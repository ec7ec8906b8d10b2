"""The SQL store's connections: SQLite inline on the event loop (one writer per process,
``BEGIN IMMEDIATE`` retried without blocking the loop, WAL checkpoints on a worker thread)
and PostgreSQL through SQLAlchemy's async engine (asyncpg), with the setup each needs
(WAL and pragmas; a ping only for a connection that rested). ``SqlStore`` runs each of
its steps through one of these drivers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

try:
    from sqlalchemy import Connection, Engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError, DisconnectionError
    from sqlalchemy.pool import ConnectionPoolEntry
except ImportError as _missing:  # pragma: no cover - depends on the install
    raise ImportError(
        "SqlStore needs SQLAlchemy, which handrail-core depends on: pip install handrail-core"
    ) from _missing

if TYPE_CHECKING:  # asyncio SQLAlchemy (greenlet) is PostgreSQL's alone: loaded in open()
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


P = ParamSpec("P")
T = TypeVar("T")
Step = Callable[Concatenate[Connection, P], T]

SQLITE_CONNECTIONS = 8


def normalize_url(url: str) -> str:
    """Pick the driver: ``sqlite:///x.db`` → sqlite3, ``postgresql://`` → asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite+aiosqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class _Runner(Protocol):
    """A transaction's steps: each call runs one; ``last`` steps run just before the commit,
    in its own hop (what seals the audit chain, holding its head for the least time)."""

    last: list[Callable[[Connection], None]]

    async def __call__(self, step: Step[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


class _Driver(Protocol):
    dialect: str

    def connection(self, *, readonly: bool) -> AbstractAsyncContextManager[_Runner]:
        """A transaction: commits when the block ends normally, rolls back otherwise."""
        ...

    async def dispose(self) -> None: ...


class _AsyncRun:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.last: list[Callable[[Connection], None]] = []

    async def __call__(self, step: Step[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._conn.run_sync(step, *args, **kwargs)


class _AsyncDriver:
    """An async SQLAlchemy engine (asyncpg): steps run through ``run_sync``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @asynccontextmanager
    async def connection(self, *, readonly: bool) -> AsyncIterator[_Runner]:
        async with self.engine.connect() as conn, conn.begin():
            run = _AsyncRun(conn)
            yield run
            for step in run.last:
                await conn.run_sync(step)

    async def dispose(self) -> None:
        await self.engine.dispose()


class _InlineRun:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.last: list[Callable[[Connection], None]] = []

    async def __call__(self, step: Step[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return step(self._conn, *args, **kwargs)


class _SqliteDriver:
    """sqlite3 under a sync SQLAlchemy engine.

    **Writes run inline**, on the event loop's own thread, on one connection kept for them:
    one process writes one transaction at a time anyway (SQLite has one writer), so a hop
    to a worker thread per statement bought nothing but its cost (tens of microseconds a
    hop, several hops a transaction). The writer never blocks the loop waiting for another
    process: its ``BEGIN IMMEDIATE`` does not wait in SQLite's busy handler but is retried
    with ``asyncio.sleep`` until ``busy_timeout``. Its commits do not checkpoint the WAL
    inline either; a passive checkpoint runs on a worker thread every
    ``CHECKPOINT_EVERY`` write transactions.

    **Reads** run inline as well, on pooled connections, beside the writer (WAL).
    """

    CHECKPOINT_EVERY = 500

    def __init__(
        self, engine: Engine, connections: int = SQLITE_CONNECTIONS, busy_timeout: float = 30.0
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # for the WAL checkpoints, which may take a while: never on the loop
        self._threads = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="handrail-sqlite"
        )
        self._slots = asyncio.Semaphore(connections)  # never wait for a pooled connection
        self._writer = asyncio.Lock()
        self._write_conn: Connection | None = None
        self._busy_timeout = busy_timeout
        self._writes = 0
        self._checkpoint: concurrent.futures.Future[Any] | None = None

    @asynccontextmanager
    async def connection(self, *, readonly: bool) -> AsyncIterator[_Runner]:
        if readonly:
            async with self._read() as run:
                yield run
            return
        async with self._writer:
            conn = await self._begin_write()
            run = _InlineRun(conn)
            try:
                yield run
                for step in run.last:
                    step(conn)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            self._writes += 1
            if self._writes % self.CHECKPOINT_EVERY == 0:
                self._start_checkpoint()

    async def _begin_write(self) -> Connection:
        if self._write_conn is None:
            conn = self.engine.connect().execution_options(handrail_begin="IMMEDIATE")
            conn.exec_driver_sql("PRAGMA busy_timeout=0")  # waits are ours, not the loop's
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            conn.commit()
            self._write_conn = conn
        conn = self._write_conn
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.001
        while True:
            try:
                conn.begin()
                return conn
            except DBAPIError as exc:
                conn.rollback()
                locked = isinstance(exc.orig, sqlite3.OperationalError) and (
                    "locked" in str(exc.orig) or "busy" in str(exc.orig)
                )
                if not locked or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)  # another process writes: wait without the loop
            pause = min(pause * 2, 0.05)

    def _start_checkpoint(self) -> None:
        if self._checkpoint is not None and not self._checkpoint.done():
            return

        def checkpoint() -> None:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

        self._checkpoint = self._threads.submit(checkpoint)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Runner]:
        """A read transaction on a pooled connection, inline too: in WAL mode a reader
        never waits for the writer, and a hop to a thread and back costs more than the
        indexed reads the engine makes. At most ``connections`` are open at once (the
        semaphore queues the rest without blocking the loop on the pool)."""
        async with self._slots:
            conn = self.engine.connect().execution_options(handrail_begin="DEFERRED")
            try:
                conn.begin()
                yield _InlineRun(conn)
                conn.commit()  # as PostgreSQL's read transactions end: a rollback means trouble
            finally:
                try:
                    conn.rollback()  # a no-op after the commit
                finally:
                    conn.close()

    async def dispose(self) -> None:
        async with self._writer:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
        await asyncio.wrap_future(self._threads.submit(self.engine.dispose))
        self._threads.shutdown(wait=False)


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode (it stays so). Connections opened at the same moment on a
    new file race for the switch, and SQLite refuses the loser at once rather than waiting:
    so look first, and retry for a while."""
    for attempt in range(100):
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


def _sqlite_setup(engine: Engine) -> None:
    """Take transaction control from the sqlite3 module: pragmas, then our own BEGIN."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # autocommit at the driver: we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across a killed process
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("handrail_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


PING_IDLE = 1.0  # seconds a pooled PostgreSQL connection may rest before it is pinged


def _postgres_setup(engine: Engine) -> None:
    """A server may restart under us, so a pooled connection is pinged before use, but only
    one that rested over ``PING_IDLE`` seconds: under load connections come back to the
    pool within milliseconds, and pinging each (SQLAlchemy's ``pool_pre_ping``) would add
    a round trip to every transaction. A connection that died while busy fails its
    transaction once, and SQLAlchemy then replaces every connection opened before it."""

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= PING_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool drops it and checks out another
            raise DisconnectionError("a pooled connection died while it rested") from exc
