"""``SqlStore``: the store on SQLite (default, one file, WAL) or PostgreSQL.

Needs the ``sql`` extra (``pip install 'handrail-core[sql]'``). Writes use optimistic
version checks, so concurrent writers, in one process or several, never overwrite each
other: the loser gets ``ConcurrencyConflict`` and the engine retries it. On SQLite every
write transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time, no upgrade
deadlocks) and waits up to ``busy_timeout`` for the lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

try:
    from sqlalchemy import and_, bindparam, event, exists, func, insert, select, update
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError, IntegrityError
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
    from sqlalchemy.pool import ConnectionPoolEntry
except ImportError as _missing:  # pragma: no cover - depends on the install
    raise ImportError(
        "SqlStore needs the sql extra: pip install 'handrail-core[sql]'"
    ) from _missing

from ..clock import utc
from ..errors import ConcurrencyConflict, StoreError
from ..models import RISK_RANK, Assignment, AssignmentStatus, Kind, RiskTier, Task, TaskEvent
from ._protocol import Change, TaskQuery
from ._sql_tables import assignments, metadata, task_events, tasks

__all__ = ["SqlStore", "normalize_url"]

_OPEN_TO_WORK = ("posted", "assigned")
_EXPIRABLE = ("posted", "estimate_pending", "assigned")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_SCHEMA_LOCK = 0x68616E64  # "hand": the advisory lock taken while creating tables


def normalize_url(url: str) -> str:
    """Pick the async driver: ``sqlite:///x.db`` → aiosqlite, ``postgresql://`` → asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None) or getattr(getattr(orig, "__cause__", None), attr, None)
        if isinstance(code, str):
            return code
    return None


def _unique_violation(exc: IntegrityError) -> bool:
    return _sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


class SqlStore:
    """Tasks and history in a SQL database, through SQLAlchemy's async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect == "sqlite":
            _sqlite_setup(engine)

    @classmethod
    async def open(
        cls, url: str = "sqlite+aiosqlite:///handrail.db", *, create: bool = True, **kwargs: Any
    ) -> SqlStore:
        """Connect to ``url`` and, with ``create``, make the tables that are missing."""
        url = normalize_url(url)
        # A server may restart under us: ping a pooled connection before use. A SQLite
        # file cannot go away, so it skips the extra round trip.
        options: dict[str, Any] = {"pool_pre_ping": not url.startswith("sqlite")}
        store = cls(create_async_engine(url, **(options | kwargs)))
        if create:
            await store.create_schema()
        return store

    async def create_schema(self) -> None:
        """Create missing tables. Safe when several processes start at once: SQLite's
        ``BEGIN IMMEDIATE`` and a PostgreSQL advisory lock let one of them at a time."""
        try:
            async with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                await conn.run_sync(metadata.create_all)
        except (DBAPIError, OSError) as exc:
            raise StoreError(f"could not create the schema: {exc}") from exc

    async def drop_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[SqlTransaction]:
        try:
            async with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    mode = "DEFERRED" if readonly else "IMMEDIATE"
                    conn = await conn.execution_options(handrail_begin=mode)
                async with conn.begin():
                    yield SqlTransaction(conn)
        except DBAPIError as exc:
            if _sqlstate(exc) in _RETRYABLE_SQLSTATES:
                raise ConcurrencyConflict("transaction", "serialization") from exc
            raise StoreError(f"database error: {exc.orig}") from exc
        except OSError as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        query = (
            select(task_events.c.seq, task_events.c.org_id, task_events.c.task_id)
            .where(task_events.c.seq > seq)
            .order_by(task_events.c.seq)
            .limit(limit)
        )
        async with self.transaction(readonly=True) as tx:
            rows = (await tx.conn.execute(query)).all()
        return [Change(int(r.seq), r.org_id, r.task_id) for r in rows]

    async def last_seq(self) -> int:
        async with self.transaction(readonly=True) as tx:
            value = (await tx.conn.execute(select(func.max(task_events.c.seq)))).scalar()
        return int(value or 0)

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_setup(engine: AsyncEngine) -> None:
    """Take transaction control from the sqlite3 module: pragmas, then our own BEGIN."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # autocommit at the driver: we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",  # in WAL mode: durable across a killed process
            "busy_timeout=30000",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("handrail_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


# ---------------------------------------------------------------- row mapping


def _task_row(task: Task) -> dict[str, Any]:
    j = task.model_dump(
        mode="json",
        include={
            "payload",
            "metadata",
            "action",
            "allowed_decisions",
            "output_schema",
            "output",
            "verification",
            "estimate",
            "reached_at",
        },
    )
    return {
        "id": task.id,
        "org_id": task.org_id,
        "kind": task.kind.value,
        "task_type": task.task_type,
        "title": task.title,
        "instructions": task.instructions,
        "payload": j["payload"],
        "risk_tier": task.risk_tier.value,
        "risk_rank": RISK_RANK[task.risk_tier],
        "sla_seconds": task.sla_seconds,
        "payout_currency": task.payout.currency.value if task.payout else None,
        "payout_minor": task.payout.minor if task.payout else None,
        "redundancy": task.redundancy,
        "open_slots": max(task.open_slots, 0),
        "require_estimate": task.require_estimate,
        "idempotency_key": task.idempotency_key,
        "request_fingerprint": task.request_fingerprint,
        "callback_url": task.callback_url,
        "meta": j["metadata"],
        "action": j["action"],
        "agent_reasoning": task.agent_reasoning,
        "confidence": task.confidence,
        "allowed_decisions": j["allowed_decisions"],
        "output_schema": j["output_schema"],
        "status": task.status.value,
        "sandbox": task.sandbox,
        "created_by": task.created_by,
        "output": j["output"],
        "verification": j["verification"],
        "failure_reason": task.failure_reason,
        "estimate": j["estimate"],
        "reached_at": j["reached_at"],
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "expires_at": task.expires_at,
        "version": task.version,
    }


def _assignment_rows(task: Task) -> list[dict[str, Any]]:
    return [
        {
            "task_id": task.id,
            "position": i,
            "worker_id": a.worker_id,
            "status": a.status.value,
            "claimed_at": a.claimed_at,
            "submitted_at": a.submitted_at,
            "released_at": a.released_at,
            "output": a.output,
        }
        for i, a in enumerate(task.assignments)
    ]


def _maybe_utc(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def _task_from(row: Any, held: Sequence[Any]) -> Task:
    m = row._mapping
    payout = (
        {"currency": m["payout_currency"], "minor": m["payout_minor"]}
        if m["payout_currency"] is not None
        else None
    )
    return Task.model_validate(
        {
            "id": m["id"],
            "org_id": m["org_id"],
            "kind": m["kind"],
            "task_type": m["task_type"],
            "title": m["title"],
            "instructions": m["instructions"],
            "payload": m["payload"],
            "risk_tier": m["risk_tier"],
            "sla_seconds": m["sla_seconds"],
            "payout": payout,
            "redundancy": m["redundancy"],
            "require_estimate": m["require_estimate"],
            "idempotency_key": m["idempotency_key"],
            "request_fingerprint": m["request_fingerprint"],
            "callback_url": m["callback_url"],
            "metadata": m["meta"],
            "action": m["action"],
            "agent_reasoning": m["agent_reasoning"],
            "confidence": m["confidence"],
            "allowed_decisions": m["allowed_decisions"],
            "output_schema": m["output_schema"],
            "status": m["status"],
            "sandbox": m["sandbox"],
            "created_by": m["created_by"],
            "output": m["output"],
            "verification": m["verification"],
            "failure_reason": m["failure_reason"],
            "estimate": m["estimate"],
            "reached_at": m["reached_at"],
            "created_at": utc(m["created_at"]),
            "updated_at": utc(m["updated_at"]),
            "expires_at": utc(m["expires_at"]),
            "version": m["version"],
            "assignments": [
                {
                    "worker_id": a.worker_id,
                    "status": a.status,
                    "claimed_at": utc(a.claimed_at),
                    "submitted_at": _maybe_utc(a.submitted_at),
                    "released_at": _maybe_utc(a.released_at),
                    "output": a.output,
                }
                for a in held
            ],
        }
    )


def _event_row(e: TaskEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "task_id": e.task_id,
        "org_id": e.org_id,
        "at": e.at,
        "actor": e.actor,
        "actor_role": e.actor_role,
        "event": e.event.value,
        "from_status": e.from_status.value if e.from_status else None,
        "to_status": e.to_status.value,
        "reason": e.reason,
        "data": e.data,
    }


_SET_ASSIGNMENT = (
    update(assignments)
    .where(
        assignments.c.task_id == bindparam("where_task"),
        assignments.c.position == bindparam("where_position"),
    )
    .values(
        {
            c: bindparam(c)
            for c in ("worker_id", "status", "claimed_at", "submitted_at", "released_at", "output")
        }
    )
)


class SqlTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        # Assignments as read in this transaction, so an update writes only what changed.
        self._seen: dict[str, tuple[Assignment, ...]] = {}

    async def _load(self, rows: Sequence[Any]) -> list[Task]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        held: dict[str, list[Any]] = {i: [] for i in ids}
        query = (
            select(assignments)
            .where(assignments.c.task_id.in_(ids))
            .order_by(assignments.c.task_id, assignments.c.position)
        )
        for a in (await self.conn.execute(query)).all():
            held[a.task_id].append(a)
        found = [_task_from(r, held[r.id]) for r in rows]
        self._seen.update((t.id, t.assignments) for t in found)
        return found

    async def get_task(self, org_id: str, task_id: str) -> Task | None:
        query = select(tasks).where(tasks.c.id == task_id, tasks.c.org_id == org_id)
        found = await self._load((await self.conn.execute(query)).all())
        return found[0] if found else None

    async def find_by_key(self, org_id: str, idempotency_key: str) -> Task | None:
        query = select(tasks).where(
            tasks.c.org_id == org_id, tasks.c.idempotency_key == idempotency_key
        )
        found = await self._load((await self.conn.execute(query)).all())
        return found[0] if found else None

    async def insert_task(self, task: Task) -> None:
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(insert(tasks), [_task_row(task)])
        except IntegrityError as exc:
            if _unique_violation(exc):  # the id or the idempotency key is taken
                raise ConcurrencyConflict("task", task.id) from exc
            raise
        await self._write_assignments(task, ())

    async def _write_assignments(self, task: Task, before: tuple[Assignment, ...]) -> None:
        """Assignments only grow, and earlier ones change status: update what differs,
        insert what is new."""
        rows = _assignment_rows(task)
        changed = [
            {**row, "where_task": task.id, "where_position": i}
            for i, (row, old) in enumerate(zip(rows, before, strict=False))
            if old != task.assignments[i]
        ]
        if changed:
            await self.conn.execute(_SET_ASSIGNMENT, changed)
        if len(rows) > len(before):
            await self.conn.execute(insert(assignments), rows[len(before) :])
        self._seen[task.id] = task.assignments

    async def update_task(self, task: Task, *, expected_version: int) -> None:
        if task.version != expected_version + 1:
            raise ValueError("a task's version must go up by one per update")
        row = _task_row(task)
        del row["id"]
        result = await self.conn.execute(
            update(tasks)
            .where(
                tasks.c.id == task.id,
                tasks.c.org_id == task.org_id,
                tasks.c.version == expected_version,
            )
            .values(**row)
        )
        if result.rowcount != 1:
            raise ConcurrencyConflict("task", task.id)
        before = self._seen.get(task.id)
        if before is None or len(before) > len(task.assignments):
            # not read here, or shrunk (only direct store users do that): rewrite them all
            await self.conn.execute(assignments.delete().where(assignments.c.task_id == task.id))
            before = ()
        await self._write_assignments(task, before)

    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        if events:
            await self.conn.execute(insert(task_events), [_event_row(e) for e in events])

    async def list_events(self, org_id: str, task_id: str) -> list[TaskEvent]:
        query = (
            select(task_events)
            .where(task_events.c.task_id == task_id, task_events.c.org_id == org_id)
            .order_by(task_events.c.seq)
        )
        out = []
        for r in (await self.conn.execute(query)).all():
            m = dict(r._mapping)
            m["at"] = utc(m["at"])
            out.append(TaskEvent.model_validate(m))
        return out

    async def list_tasks(self, org_id: str, query: TaskQuery) -> list[Task]:
        stmt = select(tasks).where(tasks.c.org_id == org_id)
        if query.statuses is not None:
            stmt = stmt.where(tasks.c.status.in_([s.value for s in query.statuses]))
        if query.kind is not None:
            stmt = stmt.where(tasks.c.kind == query.kind.value)
        if query.task_type is not None:
            stmt = stmt.where(tasks.c.task_type == query.task_type)
        if query.after is not None:
            stmt = stmt.where(
                tasks.c.id < query.after if query.newest_first else tasks.c.id > query.after
            )
        order = tasks.c.id.desc() if query.newest_first else tasks.c.id
        stmt = stmt.order_by(order).limit(query.limit)
        return await self._load((await self.conn.execute(stmt)).all())

    async def open_tasks(
        self,
        org_id: str,
        *,
        now: datetime,
        exclude_worker: str | None = None,
        kind: Kind | None = None,
        task_type: str | None = None,
        risk_tier: RiskTier | None = None,
        limit: int = 50,
    ) -> list[Task]:
        stmt = select(tasks).where(
            tasks.c.org_id == org_id,
            tasks.c.status.in_(_OPEN_TO_WORK),
            tasks.c.open_slots > 0,
            tasks.c.expires_at > now,
        )
        if exclude_worker is not None:
            stmt = stmt.where(
                ~exists().where(
                    and_(
                        assignments.c.task_id == tasks.c.id,
                        assignments.c.worker_id == exclude_worker,
                        assignments.c.status != AssignmentStatus.RELEASED.value,
                    )
                )
            )
        if kind is not None:
            stmt = stmt.where(tasks.c.kind == kind.value)
        if task_type is not None:
            stmt = stmt.where(tasks.c.task_type == task_type)
        if risk_tier is not None:
            stmt = stmt.where(tasks.c.risk_tier == risk_tier.value)
        stmt = stmt.order_by(tasks.c.expires_at, tasks.c.risk_rank.desc(), tasks.c.id).limit(limit)
        return await self._load((await self.conn.execute(stmt)).all())

    async def due_tasks(self, now: datetime, limit: int) -> list[Task]:
        stmt = (
            select(tasks)
            .where(tasks.c.status.in_(_EXPIRABLE), tasks.c.expires_at <= now)
            .order_by(tasks.c.expires_at, tasks.c.id)
            .limit(limit)
        )
        return await self._load((await self.conn.execute(stmt)).all())
