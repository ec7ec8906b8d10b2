"""The store's SQL for the ledger: accounts, postings checked against floors, balances, entries,
and the versioned holds, settlements and payouts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ..errors import ConcurrencyConflict, InsufficientFunds
from ..ledger._accounts import Account, AccountKind
from ..ledger._model import (
    EntryRecord,
    Hold,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    Settlement,
    SettlementStatus,
)
from ..money import Currency
from ._sql_rows import (
    entry_from,
    hold_from,
    hold_row,
    payout_from,
    payout_row,
    settlement_from,
    settlement_row,
)
from ._sql_tables import (
    ledger_accounts,
    ledger_entries,
    ledger_holds,
    ledger_payouts,
    ledger_postings,
    ledger_settlements,
)
from ._sql_tasks import _unique_violation


def _upsert_accounts(conn: Connection, accounts: Sequence[Account]) -> None:
    rows = [
        {
            "id": a.id,
            "kind": a.kind.value,
            "currency": a.currency.value,
            "org_id": a.org_id,
            "owner": a.owner,
            "floored": a.floored,
            "balance": 0,
        }
        for a in sorted(accounts, key=lambda a: a.id)  # one lock order for everyone
    ]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(make(ledger_accounts).on_conflict_do_nothing(index_elements=["id"]), rows)


_MOVE = (
    update(ledger_accounts)
    .where(
        ledger_accounts.c.id == bindparam("account"),
        or_(~ledger_accounts.c.floored, ledger_accounts.c.balance + bindparam("delta") >= 0),
    )
    .values(balance=ledger_accounts.c.balance + bindparam("delta"))
)
_BALANCE = select(ledger_accounts.c.balance).where(ledger_accounts.c.id == bindparam("account"))


def find_posting(conn: Connection, posting_id: str) -> Posting | None:
    row = conn.execute(select(ledger_postings.c.body).where(ledger_postings.c.id == posting_id))
    body = row.scalar()
    return Posting.model_validate(body) if body is not None else None


def post(conn: Connection, posting: Posting) -> None:
    accounts = {e.account.id: e.account for e in posting.entries}
    moves: dict[str, int] = {}
    for entry in posting.entries:
        moves[entry.account.id] = moves.get(entry.account.id, 0) + entry.amount
    _upsert_accounts(conn, list(accounts.values()))
    for account_id in sorted(moves):  # one lock order for everyone: no deadlocks
        delta = moves[account_id]
        if delta and conn.execute(_MOVE, {"account": account_id, "delta": delta}).rowcount != 1:
            have = conn.execute(_BALANCE, {"account": account_id}).scalar() or 0
            raise InsufficientFunds(account_id, posting.currency.value, -delta, int(have))
    conn.execute(
        insert(ledger_entries),
        [
            {
                "posting_id": posting.id,
                "kind": posting.kind.value,
                "account_id": e.account.id,
                "amount": e.amount,
                "created_at": posting.created_at,
            }
            for e in posting.entries
        ],
    )
    try:
        with conn.begin_nested():
            conn.execute(
                insert(ledger_postings),
                [
                    {
                        "id": posting.id,
                        "kind": posting.kind.value,
                        "org_id": posting.org_id,
                        "task_id": posting.task_id,
                        "currency": posting.currency.value,
                        "volume": posting.volume,
                        "created_at": posting.created_at,
                        "body": posting.model_dump(mode="json"),
                    }
                ],
            )
    except IntegrityError as exc:
        if _unique_violation(exc):
            raise ConcurrencyConflict("posting", posting.id) from exc
        raise


def balances(conn: Connection, account_ids: Sequence[str]) -> dict[str, int]:
    found = dict(
        conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.balance).where(
                ledger_accounts.c.id.in_(list(account_ids))
            )
        ).all()
    )
    return {a: int(found.get(a, 0)) for a in account_ids}


def sum_balances(
    conn: Connection, org_id: str, kind: AccountKind, currency: Currency, owner: str | None
) -> int:
    query = select(func.coalesce(func.sum(ledger_accounts.c.balance), 0)).where(
        ledger_accounts.c.org_id == org_id,
        ledger_accounts.c.kind == kind.value,
        ledger_accounts.c.currency == currency.value,
    )
    if owner is not None:
        query = query.where(ledger_accounts.c.owner == owner)
    return int(conn.execute(query).scalar() or 0)


def spend_since(conn: Connection, org_id: str, currency: Currency, since: datetime) -> int:
    query = select(func.coalesce(func.sum(ledger_postings.c.volume), 0)).where(
        ledger_postings.c.org_id == org_id,
        ledger_postings.c.kind == PostingKind.RESOLVE.value,
        ledger_postings.c.currency == currency.value,
        ledger_postings.c.created_at >= since,
    )
    return int(conn.execute(query).scalar() or 0)


def list_entries(
    conn: Connection, account_id: str, after: int | None, limit: int
) -> list[EntryRecord]:
    query = select(ledger_entries).where(ledger_entries.c.account_id == account_id)
    if after is not None:
        query = query.where(ledger_entries.c.seq > after)
    query = query.order_by(ledger_entries.c.seq).limit(limit)
    return [entry_from(r) for r in conn.execute(query).all()]


_PUTS: dict[tuple[str, str, tuple[str, ...]], tuple[Any, Any]] = {}


def _put_statements(
    dialect: str, table: Table, keys: Sequence[str], columns: Sequence[str]
) -> tuple[Any, Any]:
    """The insert and the versioned update of ``table``, built once per shape: the insert
    does nothing on a taken key (so it needs no savepoint) and returns the key if it
    inserted; the update binds the old key and version as ``w_<name>``."""
    shape = (table.name, dialect, tuple(columns))
    built = _PUTS.get(shape)
    if built is None:
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        first = table.c[keys[0]]
        adding = make(table).on_conflict_do_nothing().returning(first)
        where = [table.c[k] == bindparam(f"w_{k}") for k in keys]
        moving = (  # only tables with versions are ever updated
            update(table)
            .where(*where, table.c.version == bindparam("w_version"))
            .values({c: bindparam(c) for c in columns if c not in keys})
            if "version" in table.c
            else None
        )
        built = _PUTS[shape] = (adding, moving)
    return built


def _put(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    row: dict[str, Any],
    expected_version: int | None,
    what: str,
) -> None:
    """Insert (``expected_version`` None; ``ConcurrencyConflict`` if the key is taken) or
    replace the row stored at that version (``ConcurrencyConflict`` if it moved on)."""
    name = "/".join(str(row[k]) for k in keys)
    adding, moving = _put_statements(conn.dialect.name, table, keys, tuple(row))
    if expected_version is None:
        if conn.execute(adding, row).first() is None:
            raise ConcurrencyConflict(what, name)
        return
    if row["version"] != expected_version + 1:
        raise ValueError(f"a {what}'s version must go up by one per update")
    params = {k: v for k, v in row.items() if k not in keys}
    params.update({f"w_{k}": row[k] for k in keys}, w_version=expected_version)
    if conn.execute(moving, params).rowcount != 1:
        raise ConcurrencyConflict(what, name)


def get_hold(conn: Connection, task_id: str) -> Hold | None:
    row = conn.execute(select(ledger_holds).where(ledger_holds.c.task_id == task_id)).first()
    return hold_from(row) if row is not None else None


def put_hold(conn: Connection, hold: Hold, expected_version: int | None) -> None:
    _put(conn, ledger_holds, ("task_id",), hold_row(hold), expected_version, "hold")


def settlements_for_task(conn: Connection, task_id: str) -> list[Settlement]:
    query = (
        select(ledger_settlements)
        .where(ledger_settlements.c.task_id == task_id)
        .order_by(ledger_settlements.c.id)
    )
    return [settlement_from(r) for r in conn.execute(query).all()]


def due_settlements(conn: Connection, now: datetime, limit: int) -> list[Settlement]:
    query = (
        select(ledger_settlements)
        .where(
            ledger_settlements.c.status == SettlementStatus.PENDING.value,
            ledger_settlements.c.due_at <= now,
        )
        .order_by(ledger_settlements.c.due_at, ledger_settlements.c.id)
        .limit(limit)
    )
    return [settlement_from(r) for r in conn.execute(query).all()]


def put_settlement(conn: Connection, settlement: Settlement, expected_version: int | None) -> None:
    _put(
        conn,
        ledger_settlements,
        ("id",),
        settlement_row(settlement),
        expected_version,
        "settlement",
    )


def find_payout(conn: Connection, org_id: str, worker_id: str, key: str) -> PayoutRecord | None:
    row = conn.execute(
        select(ledger_payouts).where(
            ledger_payouts.c.org_id == org_id,
            ledger_payouts.c.worker_id == worker_id,
            ledger_payouts.c.key == key,
        )
    ).first()
    return payout_from(row) if row is not None else None


def payouts_of(conn: Connection, org_id: str, worker_id: str) -> list[PayoutRecord]:
    query = (
        select(ledger_payouts)
        .where(ledger_payouts.c.org_id == org_id, ledger_payouts.c.worker_id == worker_id)
        .order_by(ledger_payouts.c.id)
    )
    return [payout_from(r) for r in conn.execute(query).all()]


def pending_payouts(conn: Connection, limit: int) -> list[PayoutRecord]:
    query = (
        select(ledger_payouts)
        .where(ledger_payouts.c.status == PayoutStatus.PENDING.value)
        .order_by(ledger_payouts.c.id)
        .limit(limit)
    )
    return [payout_from(r) for r in conn.execute(query).all()]


def put_payout(conn: Connection, payout: PayoutRecord, expected_version: int | None) -> None:
    _put(conn, ledger_payouts, ("id",), payout_row(payout), expected_version, "payout")


def ledger_totals(conn: Connection) -> dict[Currency, int]:
    query = select(ledger_accounts.c.currency, func.sum(ledger_accounts.c.balance)).group_by(
        ledger_accounts.c.currency
    )
    return {Currency(c): int(total) for c, total in conn.execute(query).all()}
