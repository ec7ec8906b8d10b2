"""One resume of a thread at a time.

Two resumes of the same thread at once would both run the paused node from the same
checkpoint, and with it the action it guards. A resumer holds the thread's lock from
reading the thread's pending interrupts until its resume has been saved.
:data:`PROCESS_LOCK` (the default) serialises the resumes made in this process (every
resumer's event stream, webhooks and reconciliations); :class:`PostgresThreadLock` extends that
to every process that uses the same PostgreSQL database, with advisory locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["PROCESS_LOCK", "LocalThreadLock", "PostgresThreadLock", "ThreadLock"]


class ThreadLock(Protocol):
    """Mutual exclusion per LangGraph thread id; both calls may block, from any thread."""

    def acquire(self, thread_id: str) -> None: ...

    def release(self, thread_id: str) -> None: ...


@contextlib.contextmanager
def holding(lock: ThreadLock, thread_id: str) -> Iterator[None]:
    lock.acquire(thread_id)
    try:
        yield
    finally:
        lock.release(thread_id)


class LocalThreadLock:
    """A lock per thread id for this process (entries go when nobody holds or waits)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def acquire(self, thread_id: str) -> None:
        with self._guard:
            lock, users = self._locks.get(thread_id, (threading.Lock(), 0))
            self._locks[thread_id] = (lock, users + 1)
        lock.acquire()

    def release(self, thread_id: str) -> None:
        with self._guard:
            lock, users = self._locks[thread_id]
            if users == 1:
                del self._locks[thread_id]
            else:
                self._locks[thread_id] = (lock, users - 1)
        lock.release()


PROCESS_LOCK = LocalThreadLock()
"""The default: one resume of a thread id at a time among all the resumers of this
process (threads of different graphs with the same id wait for each other, harmlessly)."""


def advisory_key(thread_id: str) -> int:
    """A signed 64-bit advisory lock key for ``thread_id``."""
    digest = hashlib.blake2b(b"handrail-resume:" + thread_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresThreadLock:
    """Per-thread locks across processes: a PostgreSQL session advisory lock per thread
    id (``conninfo``: a libpq URL, such as the one your ``PostgresSaver`` uses), under
    :data:`PROCESS_LOCK` so this process asks for each once. Each held lock has a
    connection of its own (kept for reuse afterwards), so waiting for one never delays
    another. A lost connection lets go of its lock, so another process may then resume."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._local = PROCESS_LOCK
        self._guard = threading.Lock()
        self._idle: list[Any] = []
        self._held: dict[str, Any] = {}

    def _connection(self) -> Any:
        import psycopg  # noqa: PLC0415 - only for PostgreSQL users

        with self._guard:
            if self._idle:
                return self._idle.pop()
        return psycopg.connect(self.conninfo, autocommit=True)

    def acquire(self, thread_id: str) -> None:
        self._local.acquire(thread_id)
        try:
            conn = self._connection()
            conn.execute("SELECT pg_advisory_lock(%s)", (advisory_key(thread_id),))
        except BaseException:
            self._local.release(thread_id)
            raise
        with self._guard:
            self._held[thread_id] = conn

    def release(self, thread_id: str) -> None:
        with self._guard:
            conn = self._held.pop(thread_id)
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (advisory_key(thread_id),))
            with self._guard:
                self._idle.append(conn)
        except Exception:
            conn.close()  # a broken session holds no locks
            raise
        finally:
            self._local.release(thread_id)

    def close(self) -> None:
        """Close the idle connections (held locks keep theirs until released)."""
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
