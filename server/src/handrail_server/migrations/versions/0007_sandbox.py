"""Sandbox is a world of its own: the rows of sandbox tasks made before it move from their
organisation (``acme``) into its sandbox (``acme~sandbox``), where ``hr_test_`` keys now
act.

Moved: the tasks (``sandbox`` true), their history, holds, decision tokens, uploads,
feedback, per-task callbacks (webhook endpoints bound to the task's key) and the
idempotency records whose stored answer is one of these tasks. The money still held for an
open sandbox task goes back to the organisation's live balance, and the sandbox's mint
funds the task's escrow in the sandbox instead: two balanced postings
(``sandbox_move:<task>:live``, ``sandbox_move:<task>:sandbox``). What is history stays
where it was written: ledger postings and entries (append-only), the audit chain (its
hashes link the live entries), the webhook and notification outboxes, learning samples.

Revision ID: 0007_sandbox
Revises: 0006_subscribed
Create Date: 2026-12-07 16:00:00.000000

"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from alembic import op

revision: str = "0007_sandbox"
down_revision: str | Sequence[str] | None = "0006_subscribed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUFFIX = "~sandbox"

tasks = sa.table(
    "tasks",
    sa.column("id", sa.String),
    sa.column("org_id", sa.String),
    sa.column("sandbox", sa.Boolean),
    sa.column("idempotency_key", sa.String),
)
holds = sa.table(
    "ledger_holds",
    sa.column("task_id", sa.String),
    sa.column("org_id", sa.String),
    sa.column("currency", sa.String),
    sa.column("status", sa.String),
)
accounts = sa.table(
    "ledger_accounts",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("currency", sa.String),
    sa.column("org_id", sa.String),
    sa.column("owner", sa.String),
    sa.column("floored", sa.Boolean),
    sa.column("balance", sa.BigInteger),
)
entries = sa.table(
    "ledger_entries",
    sa.column("posting_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("account_id", sa.String),
    sa.column("amount", sa.BigInteger),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
postings = sa.table(
    "ledger_postings",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("org_id", sa.String),
    sa.column("task_id", sa.String),
    sa.column("currency", sa.String),
    sa.column("volume", sa.BigInteger),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("body", sa.JSON),
)
idempotency = sa.table(
    "idempotency",
    sa.column("org_id", sa.String),
    sa.column("key", sa.String),
    sa.column("route", sa.String),
    sa.column("body", sa.JSON),
)
endpoints = sa.table(
    "webhook_endpoints",
    sa.column("org_id", sa.String),
    sa.column("task_key", sa.String),
)
BY_TASK = ("task_events", "ledger_holds", "decision_tokens", "uploads", "feedback")


def _account_id(kind: str, currency: str, org_id: str, owner: str | None = None) -> str:
    parts = [kind, currency, quote(org_id, safe="")]
    return ":".join(parts + ([quote(owner, safe="")] if owner is not None else []))


def _account(kind: str, currency: str, org: str, owner: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "currency": currency, "org_id": org, "owner": owner}


def _post(
    conn: sa.Connection,
    posting_id: str,
    kind: str,
    org: str,
    task_id: str,
    currency: str,
    moves: list[tuple[dict[str, Any], int]],
    now: datetime,
) -> None:
    """One balanced posting, as ``handrail.store`` writes it (accounts made when new)."""
    for account, amount in moves:
        account_id = _account_id(**account)
        exists = conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first()
        if exists is None:
            floored = account["kind"] not in ("external_funding", "sandbox_mint")
            conn.execute(
                sa.insert(accounts).values(id=account_id, floored=floored, balance=0, **account)
            )
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.id == account_id)
            .values(balance=accounts.c.balance + amount)
        )
    conn.execute(
        sa.insert(entries),
        [
            {
                "posting_id": posting_id,
                "kind": kind,
                "account_id": _account_id(**account),
                "amount": amount,
                "created_at": now,
            }
            for account, amount in moves
        ],
    )
    body = {
        "id": posting_id,
        "kind": kind,
        "org_id": org,
        "task_id": task_id,
        "currency": currency,
        "entries": [{"account": account, "amount": amount} for account, amount in moves],
        "volume": 0,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "memo": {"migration": revision},
    }
    conn.execute(
        sa.insert(postings).values(
            id=posting_id,
            kind=kind,
            org_id=org,
            task_id=task_id,
            currency=currency,
            volume=0,
            created_at=now,
            body=body,
        )
    )


def _rehome_escrow(conn: sa.Connection, task_id: str, source: str, target: str) -> None:
    """The money held for ``task_id`` back to ``source``'s balance; the same amount into
    the task's escrow in ``target``, from the sandbox's mint (or, on the way back, the
    other way round)."""
    hold = conn.execute(
        sa.select(holds.c.currency).where(holds.c.task_id == task_id, holds.c.status == "held")
    ).first()
    if hold is None:
        return
    currency = hold.currency
    held = conn.execute(
        sa.select(accounts.c.balance).where(
            accounts.c.id == _account_id("escrow", currency, source, task_id)
        )
    ).scalar()
    if not held:
        return
    now = datetime.now(UTC)
    sandbox = source if source.endswith(SUFFIX) else target
    escrow_from = _account("escrow", currency, source, task_id)
    escrow_to = _account("escrow", currency, target, task_id)
    if sandbox == target:  # live escrow back to the live balance; the mint funds the sandbox
        out = [(escrow_from, -held), (_account("org_available", currency, source), held)]
        into = [(_account("sandbox_mint", currency, target), -held), (escrow_to, held)]
    else:  # the way back: the sandbox escrow to its mint; the live balance funds it again
        out = [(escrow_from, -held), (_account("sandbox_mint", currency, source), held)]
        into = [(_account("org_available", currency, target), -held), (escrow_to, held)]
    _post(conn, f"sandbox_move:{task_id}:{source}", "adjust", source, task_id, currency, out, now)
    _post(conn, f"sandbox_move:{task_id}:{target}", "top_up", target, task_id, currency, into, now)


def _move(conn: sa.Connection, *, into_sandbox: bool) -> None:
    moving = sa.select(tasks.c.id, tasks.c.org_id, tasks.c.idempotency_key).where(
        tasks.c.sandbox.is_(True),
        ~tasks.c.org_id.like(f"%{SUFFIX}") if into_sandbox else tasks.c.org_id.like(f"%{SUFFIX}"),
    )
    found = conn.execute(moving).all()
    if not found:
        return
    sqlite = conn.dialect.name == "sqlite"
    guards: list[tuple[str, str]] = []
    if sqlite:  # the append-only guards of task_events, put back as they were
        guards = [
            (r[0], r[1])
            for r in conn.execute(
                sa.text(
                    "SELECT name, sql FROM sqlite_master "
                    "WHERE type = 'trigger' AND tbl_name = 'task_events'"
                )
            )
        ]
        for name, _ in guards:
            op.execute(f'DROP TRIGGER "{name}"')
    else:
        op.execute("ALTER TABLE task_events DISABLE TRIGGER USER")
    for task_id, org, key in found:
        target = f"{org}{SUFFIX}" if into_sandbox else org.removesuffix(SUFFIX)
        _rehome_escrow(conn, task_id, org, target)
        conn.execute(sa.update(tasks).where(tasks.c.id == task_id).values(org_id=target))
        for name in BY_TASK:
            table = sa.table(name, sa.column("org_id"), sa.column("task_id"))
            conn.execute(sa.update(table).where(table.c.task_id == task_id).values(org_id=target))
        if key is not None:
            conn.execute(
                sa.update(endpoints)
                .where(endpoints.c.org_id == org, endpoints.c.task_key == key)
                .values(org_id=target)
            )
    _move_records(conn, {task_id: org for task_id, org, _ in found}, into_sandbox)
    if sqlite:
        for _, sql in guards:
            op.execute(sql)
    else:
        op.execute("ALTER TABLE task_events ENABLE TRIGGER USER")


def _move_records(conn: sa.Connection, moved: dict[str, str], into_sandbox: bool) -> None:
    """The idempotency records whose stored answer is a moved task, with it."""
    for record in conn.execute(
        sa.select(idempotency.c.org_id, idempotency.c.key, idempotency.c.route, idempotency.c.body)
    ).all():
        body = json.loads(record.body) if isinstance(record.body, str) else record.body
        if not isinstance(body, dict):
            continue
        task_id = body.get("id") if body.get("id") in moved else body.get("task_id")
        if task_id not in moved or moved[task_id] != record.org_id:
            continue
        target = f"{record.org_id}{SUFFIX}" if into_sandbox else record.org_id.removesuffix(SUFFIX)
        conn.execute(
            sa.update(idempotency)
            .where(
                idempotency.c.org_id == record.org_id,
                idempotency.c.key == record.key,
                idempotency.c.route == record.route,
            )
            .values(org_id=target)
        )


def upgrade() -> None:
    _move(op.get_bind(), into_sandbox=True)


def downgrade() -> None:
    _move(op.get_bind(), into_sandbox=False)
