"""The audit chain in the database: the guards refuse changes, and a change made behind
their back (a row edited, removed, or the tail cut) is caught by verification, naming the
first broken link. Many writers in one organisation on PostgreSQL never fork the chain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from handrail import Decision, Engine, Principal, Role, StoreError
from handrail.audit import GENESIS, AuditHead, link, verify
from handrail.clock import ManualClock
from handrail.store.sql import SqlStore
from tests.postgres import fresh_schema

AGENT = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="acme", id="alice", roles=frozenset({Role.REVIEWER}))
ADMIN = Principal(org_id="acme", id="root", roles=frozenset({Role.ADMIN}))

Opener = Callable[[], Awaitable[SqlStore]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens handles on one fresh database (a SQLite file, or a PostgreSQL schema)."""
    opened: list[SqlStore] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url, options = f"sqlite:///{tmp_path / 'audit.db'}", {}
        else:
            url = request.getfixturevalue("postgres_url")  # skips (or fails) without a server
            schema = await stack.enter_async_context(fresh_schema(url))
            options = {"connect_args": {"server_settings": {"search_path": schema}}}

        async def open_one() -> SqlStore:
            store = await SqlStore.open(url, **options)
            opened.append(store)
            return store

        try:
            yield open_one
        finally:
            for store in opened:
                await store.close()


async def a_few_reviews(engine: Engine, n: int = 3) -> None:
    for i in range(n):
        task = await engine.create(
            AGENT, {"kind": "review", "action": {"name": "pay", "args": {"i": i}}}
        )
        await engine.decide(ALICE, task.id, Decision.approve())


def _unguarded(conn: Connection, *changes: tuple[str, dict[str, Any]]) -> None:
    """Change the log the way someone with the database's keys could: guards off, change
    (guards back on, on PostgreSQL)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
    for statement, params in changes:
        conn.execute(text(statement), params)
    if postgres:
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))


async def test_the_guards_refuse_changes(opener: Opener) -> None:
    store = await opener()
    await a_few_reviews(Engine(store))
    for statement in (
        "UPDATE audit_log SET kind = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
    ):
        with pytest.raises(StoreError, match="append-only"):
            await store.run(lambda c, s=statement: c.execute(text(s)))
    assert (await Engine(store).verify_chain("acme")).ok


@pytest.mark.parametrize(
    ("statement", "broken_at", "why"),
    [
        (  # a decision's reviewer rewritten in the stored body
            'UPDATE audit_log SET body = replace(body, \'"actor":"alice"\', '
            '\'"actor":"mallory"\') WHERE seq = 4',
            4,
            "contents do not match its hash",
        ),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "entries are missing or moved"),
        (
            f"UPDATE audit_log SET hash = '{'ab' * 32}' WHERE seq = 3",
            3,
            "contents do not match its hash",
        ),
        ("DELETE FROM audit_log WHERE seq >= 10", 10, "the chain ends at 9"),
        ("DELETE FROM audit_heads", 1, "entries exist but no head does"),
        ("UPDATE audit_heads SET seq = 11", 11, "does not match the recorded head"),
    ],
)
async def test_tampering_is_caught(
    opener: Opener, statement: str, broken_at: int, why: str
) -> None:
    store = await opener()
    engine = Engine(store)
    await a_few_reviews(engine)
    entries = await engine.audit_entries(ADMIN, limit=100)
    assert entries[3].actor == "alice"  # the row the first case rewrites
    assert (await engine.verify_chain("acme")).ok
    await store.run(lambda c: _unguarded(c, (statement, {})))
    report = await engine.verify_audit(ADMIN)
    assert (report.ok, report.broken_at) == (False, broken_at), report
    assert why in (report.reason or "")


async def test_a_rewritten_chain_does_not_match_its_head(opener: Opener) -> None:
    """Re-hashing every entry after a change still leaves the head behind (and a head kept
    elsewhere, an export, say, would disagree too)."""
    store = await opener()
    engine = Engine(store)
    await a_few_reviews(engine, 1)
    entries = await engine.audit_entries(ADMIN, limit=100)
    forged, prev = [], GENESIS
    for entry in entries:
        body = entry.body().replace('"actor":"alice"', '"actor":"mallory"')
        forged.append((entry.seq, body, prev, link(prev, body)))
        prev = forged[-1][3]

    update = "UPDATE audit_log SET body = :b, prev_hash = :p, hash = :h WHERE seq = :s"
    changes = [(update, {"b": b, "p": p, "h": h, "s": seq}) for seq, b, p, h in forged]
    await store.run(lambda c: _unguarded(c, *changes))
    report = await engine.verify_chain("acme")
    assert not report.ok and report.broken_at == len(entries)
    assert "does not match the recorded head" in (report.reason or "")
    exported = await engine.audit_entries(ADMIN, limit=100)
    assert (
        verify("acme", exported, AuditHead("acme", entries[-1].seq, entries[-1].hash)).ok is False
    )


@pytest.mark.postgres
@pytest.mark.parametrize("opener", ["postgres"], indirect=True)
async def test_concurrent_writers_on_postgres_never_fork_the_chain(opener: Opener) -> None:
    """Eight connection pools, six reviews at once on each, one organisation."""
    clock = ManualClock()
    stores = [await opener() for _ in range(8)]
    engines = [Engine(s, clock=clock) for s in stores]

    async def writer(engine: Engine, n: int) -> None:
        async def one(i: int) -> None:
            spec = {"kind": "review", "action": {"name": "pay", "args": {"n": n, "i": i}}}
            task = await engine.create(AGENT, spec)
            await engine.decide(ALICE, task.id, Decision.approve())

        await asyncio.gather(*(one(i) for i in range(6)))

    await asyncio.gather(*(writer(e, n) for n, e in enumerate(engines)))
    report = await engines[0].verify_chain("acme")
    assert report.ok, report
    assert report.checked == report.head_seq == 8 * 6 * 4  # create, claim, submit, verify

    def links(conn: Connection) -> tuple[int, int, int]:
        row = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT prev_hash), count(DISTINCT seq) "
                "FROM audit_log WHERE org_id = 'acme'"
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    total, prevs, seqs = await stores[0].run(links)
    assert total == prevs == seqs == report.head_seq  # one successor per entry: no fork


@pytest.mark.postgres
@pytest.mark.parametrize("opener", ["postgres"], indirect=True)
async def test_a_store_that_wrote_last_seals_in_one_statement(opener: Opener) -> None:
    """PostgreSQL: the head this store left is a guess the database checks; right, sealing
    is one statement; wrong (another store wrote since), it locks and reads the head."""
    first, second = await opener(), await opener()
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "audit" in statement:
            seen.append(statement.split()[0])

    for store in (first, second):
        event.listen(store._driver.engine.sync_engine, "before_cursor_execute", note)  # type: ignore[attr-defined]
    one, two = Engine(first), Engine(second)
    spec = {"kind": "review", "action": {"name": "pay"}}
    await one.create(AGENT, spec)  # no guess yet: lock, insert, move
    assert seen == ["INSERT", "INSERT", "UPDATE"]
    seen.clear()
    await one.create(AGENT, spec)  # the guess holds: one statement
    assert seen == ["WITH"]
    seen.clear()
    await two.create(AGENT, spec)
    await one.create(AGENT, spec)  # the other store wrote since: the guess fails, then locks
    assert seen == ["INSERT", "INSERT", "UPDATE", "WITH", "INSERT", "INSERT", "UPDATE"]
    report = await one.verify_chain("acme")
    assert report.ok and report.checked == 4
