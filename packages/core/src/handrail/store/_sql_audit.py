"""The store's SQL for the audit chains: sealing records onto each organisation's chain under
its locked head, and reading entries and heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..audit import AuditEntry, AuditHead, AuditRecord, chain
from ..models import TaskEvent
from ._sql_rows import audit_from, event_row
from ._sql_tables import audit_heads, audit_log, task_events
from ._sql_tasks import append_events


def _head_upsert(make: Any) -> Any:
    new = make(audit_heads).values(org_id=bindparam("org_id"), seq=0, hash="")
    return new.on_conflict_do_update(
        index_elements=["org_id"], set_={"seq": audit_heads.c.seq}
    ).returning(audit_heads.c.seq, audit_heads.c.hash)


# The organisation's head, locked until the transaction ends (created when new): one
# statement, so concurrent writers queue on it and each links onto the last commit.
_LOCK_HEAD = {"postgresql": _head_upsert(pg_insert), "sqlite": _head_upsert(sqlite_insert)}
_INSERT_AUDIT = insert(audit_log)
_MOVE_HEAD = (
    update(audit_heads)
    .where(audit_heads.c.org_id == bindparam("where_org"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)
_MOVE_GUESSED_HEAD = (
    update(audit_heads)
    .where(
        audit_heads.c.org_id == bindparam("where_org"),
        audit_heads.c.seq == bindparam("old_seq"),
        audit_heads.c.hash == bindparam("old_hash"),
    )
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


Heads = dict[str, AuditHead]
"""The heads a store last sealed onto, by organisation: a guess, checked by the database."""

_COLUMNS = ("org_id", "seq", "kind", "task_id", "at", "body", "prev_hash", "hash")
_TYPES = ("VARCHAR", "BIGINT", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "TEXT", "VARCHAR", "VARCHAR")
_EVENT_COLUMNS = (
    *("id", "task_id", "org_id", "at", "actor", "actor_role", "event"),
    *("from_status", "to_status", "reason", "data"),
)
_EVENT_TYPES = (
    *("VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "VARCHAR", "VARCHAR", "VARCHAR"),
    *("VARCHAR", "VARCHAR", "TEXT", "JSONB"),
)
_ON_GUESS: dict[tuple[int, int], Any] = {}


def _values(prefix: str, columns: Sequence[str], types: Sequence[str], count: int) -> str:
    return ", ".join(
        "("
        + ", ".join(f"CAST(:{prefix}{c}{i} AS {t})" for c, t in zip(columns, types, strict=True))
        + ")"
        for i in range(count)
    )


def _on_guess(count: int, events: int) -> Any:
    """PostgreSQL, one round trip: move the head on from where this store last left it
    (a guarded UPDATE, which also locks it) and, only if that matched, insert the entries
    and the transaction's task events. The events' sequence numbers are drawn as their
    rows are made, after the ``EXISTS`` on the moved head, so with the head locked, as
    ``seal_audit`` requires."""
    statement = _ON_GUESS.get((count, events))
    if statement is None:
        sql = (
            "WITH moved AS (UPDATE audit_heads SET seq = :new_seq, hash = :new_hash "
            "WHERE org_id = :org AND seq = :old_seq AND hash = :old_hash RETURNING org_id)"
        )
        if events:
            sql += (
                f", added AS (INSERT INTO task_events ({', '.join(_EVENT_COLUMNS)}) "
                f"SELECT * FROM (VALUES {_values('e_', _EVENT_COLUMNS, _EVENT_TYPES, events)}) "
                f"AS v ({', '.join(_EVENT_COLUMNS)}) WHERE EXISTS (SELECT 1 FROM moved))"
            )
        sql += (
            f" INSERT INTO audit_log ({', '.join(_COLUMNS)}) SELECT * FROM "
            f"(VALUES {_values('', _COLUMNS, _TYPES, count)}) AS v ({', '.join(_COLUMNS)}) "
            "WHERE EXISTS (SELECT 1 FROM moved) RETURNING seq"
        )
        typed = [bindparam(f"e_data{i}", type_=task_events.c.data.type) for i in range(events)]
        statement = _ON_GUESS[(count, events)] = text(sql).bindparams(*typed)
    return statement


def _rows(sealed: Sequence[tuple[AuditEntry, str]]) -> list[dict[str, Any]]:
    return [
        {
            "org_id": e.org_id,
            "seq": e.seq,
            "kind": e.kind,
            "task_id": e.task_id,
            "at": e.at,
            "body": body,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e, body in sealed
    ]


def _seal_on_guess(
    conn: Connection,
    org_id: str,
    records: Sequence[AuditRecord],
    guess: AuditHead,
    events: Sequence[TaskEvent],
) -> tuple[AuditHead, bool] | None:
    """The head moved on from ``guess`` with ``records`` sealed, and whether ``events``
    were inserted with them (PostgreSQL); None if another writer moved the head."""
    sealed = chain(records, guess)
    last = sealed[-1][0]
    if conn.dialect.name == "sqlite":  # no data-modifying CTE: the guarded move, then insert
        moved = conn.execute(
            _MOVE_GUESSED_HEAD,
            {
                "where_org": org_id,
                "old_seq": guess.seq,
                "old_hash": guess.hash,
                "seq": last.seq,
                "hash": last.hash,
            },
        )
        if moved.rowcount != 1:
            return None
        rows = _rows(sealed)
        conn.execute(_INSERT_AUDIT, rows[0] if len(rows) == 1 else rows)
        return AuditHead(org_id, last.seq, last.hash), False
    params: dict[str, Any] = {
        "org": org_id,
        "old_seq": guess.seq,
        "old_hash": guess.hash,
        "new_seq": last.seq,
        "new_hash": last.hash,
    }
    for i, row in enumerate(_rows(sealed)):
        params.update({f"{c}{i}": v for c, v in row.items()})
    for i, event in enumerate(events):
        params.update({f"e_{c}{i}": v for c, v in event_row(event).items()})
    if not conn.execute(_on_guess(len(sealed), len(events)), params).all():
        return None  # another writer moved the head (or the guess was never committed)
    return AuditHead(org_id, last.seq, last.hash), True


def seal_audit(
    conn: Connection,
    records: Sequence[AuditRecord],
    heads: Heads | None = None,
    events: Sequence[TaskEvent] = (),
) -> None:
    """Chain ``records`` onto their organisations' heads (in organisation order, so two
    transactions never wait for each other's heads) and move the heads on. The head is
    locked until the transaction ends, so concurrent writers queue on it and each links
    onto the last commit. ``heads`` (this store's guesses) saves reading the head when
    this store was the last to write: one round trip on PostgreSQL (the task events
    included), two statements on SQLite (the guarded move, the insert).

    The transaction's task ``events`` are inserted here, each organisation's once its head
    is locked: their sequence numbers are drawn while no other writer of that organisation
    can commit, so an organisation's events commit in the order of their numbers. (Drawn
    earlier, a transaction holding a lower number could commit after one holding a higher,
    and a reader following ``seq`` would pass its events by for good.)"""
    by_org: dict[str, list[AuditRecord]] = {}
    for record in records:
        by_org.setdefault(record.org_id, []).append(record)
    events_of: dict[str, list[TaskEvent]] = {}
    for event in events:
        events_of.setdefault(event.org_id, []).append(event)
        by_org.setdefault(event.org_id, [])
    lock = _LOCK_HEAD[conn.dialect.name]
    for org_id in sorted(by_org):
        if not by_org[org_id]:  # events with no audit record (never, from the engine)
            conn.execute(lock, {"org_id": org_id}).one()  # the head locked all the same
            append_events(conn, events_of[org_id])
            continue
        guess = heads.get(org_id) if heads is not None else None
        events = events_of.get(org_id, ())
        on_guess = _seal_on_guess(conn, org_id, by_org[org_id], guess, events) if guess else None
        moved, added = on_guess if on_guess is not None else (None, False)
        if moved is None:
            row = conn.execute(lock, {"org_id": org_id}).one()
            head = AuditHead(org_id, int(row.seq), row.hash) if row.seq else None
            sealed = chain(by_org[org_id], head)
            conn.execute(_INSERT_AUDIT, _rows(sealed))
            last = sealed[-1][0]
            conn.execute(_MOVE_HEAD, {"where_org": org_id, "seq": last.seq, "hash": last.hash})
            moved = AuditHead(org_id, last.seq, last.hash)
        if heads is not None:
            heads[org_id] = moved
        if events and not added:
            append_events(conn, events)


def audit_entries(conn: Connection, org_id: str, after: int, limit: int) -> list[AuditEntry]:
    query = (
        select(audit_log)
        .where(audit_log.c.org_id == org_id, audit_log.c.seq > after)
        .order_by(audit_log.c.seq)
        .limit(limit)
    )
    return [audit_from(r) for r in conn.execute(query).all()]


def audit_head(conn: Connection, org_id: str) -> AuditHead | None:
    row = conn.execute(select(audit_heads).where(audit_heads.c.org_id == org_id)).first()
    if row is None or not row.seq:
        return None
    return AuditHead(org_id, int(row.seq), row.hash)


def audit_orgs(conn: Connection) -> list[str]:
    query = select(audit_heads.c.org_id).where(audit_heads.c.seq > 0).order_by(audit_heads.c.org_id)
    return list(conn.execute(query).scalars())
