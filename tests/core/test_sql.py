"""What only the SQL store has: database constraints, append-only history, URLs, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from handrail import (
    Decision,
    Engine,
    Event,
    ManualClock,
    NotEligible,
    Principal,
    Remember,
    Role,
    Status,
    StoreError,
    Task,
    TaskEvent,
)
from handrail.ids import new_id
from handrail.store import _sql_drivers
from handrail.store.sql import SqlStore, normalize_url
from handrail.testing import make_task
from tests.postgres import asyncpg_dsn, fresh_schema

AGENT = Principal(org_id="org-a", id="agent", roles=frozenset({Role.REQUESTER}))


async def test_history_cannot_be_rewritten(store: SqlStore) -> None:
    task = await Engine(store).create(AGENT, {"kind": "review", "action": {"name": "pay"}})
    for statement in ("UPDATE task_events SET actor = 'mallory'", "DELETE FROM task_events"):
        with pytest.raises(StoreError, match="append-only"):
            await store.run(lambda conn, sql=statement: conn.execute(text(sql)))
    async with store.transaction(readonly=True) as tx:
        assert [e.actor for e in await tx.list_events("org-a", task.id)] == ["agent"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status", "'approved'"),
        ("open_slots", "5"),
        ("payout_minor", "-1"),
        ("confidence", "2"),
        ("action", "NULL"),
        ("expires_at", "created_at"),
    ],
)
async def test_the_database_enforces_the_invariants(
    store: SqlStore, column: str, value: str
) -> None:
    task = make_task(ManualClock())
    async with store.transaction() as tx:
        await tx.insert_task(task)
    with pytest.raises(StoreError, match=r"(?i)check"):
        await store.run(lambda conn: conn.execute(text(f"UPDATE tasks SET {column} = {value}")))


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = await SqlStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    mode, keys = await store.run(
        lambda conn: (
            conn.execute(text("PRAGMA journal_mode")).scalar(),
            conn.execute(text("PRAGMA foreign_keys")).scalar(),
        ),
        readonly=True,
    )
    await store.close()
    assert (mode, keys) == ("wal", 1)


async def test_an_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match=r"could not create the schema|unreachable"):
        await SqlStore.open("postgresql://nobody@127.0.0.1:1/none")


def test_urls_get_async_drivers() -> None:
    assert normalize_url("sqlite:///h.db") == "sqlite:///h.db"
    assert normalize_url("sqlite+aiosqlite:///h.db") == "sqlite:///h.db"
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_url("postgres://h/db") == "postgresql+asyncpg://h/db"
    assert normalize_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


@pytest.mark.postgres
async def test_processes_starting_together_create_the_schema_once(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as schema:
        options = {"connect_args": {"server_settings": {"search_path": schema}}}
        stores = await asyncio.gather(*(SqlStore.open(postgres_url, **options) for _ in range(4)))
        for store in stores:
            await store.close()


async def test_sqlite_clients_starting_together_create_the_schema_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    stores = await asyncio.gather(*(SqlStore.open(url) for _ in range(4)))
    for store in stores:
        await store.close()


@pytest.mark.postgres
async def test_a_reader_following_seq_never_passes_an_event_by(postgres_url: str) -> None:
    """Two writers of one organisation on PostgreSQL: the one that appends its event first
    commits last. A reader that read the other's event in between still finds it after
    the ``seq`` it reached (sequence numbers drawn at insert would put it behind)."""
    clock = ManualClock()
    async with fresh_schema(postgres_url) as schema:
        options = {"connect_args": {"server_settings": {"search_path": schema}}}
        first = await SqlStore.open(postgres_url, **options)
        second = await SqlStore.open(postgres_url, **options)
        appended, release = asyncio.Event(), asyncio.Event()

        async def slow_writer() -> str:
            task = make_task(clock)
            async with first.transaction() as tx:
                await tx.insert_task(task)
                await tx.append_events([_created(task, clock)])
                appended.set()
                await release.wait()  # commits only after the other writer and the reader
            return task.id

        try:
            slow = asyncio.create_task(slow_writer())
            await appended.wait()
            quick = make_task(clock)
            async with second.transaction() as tx:
                await tx.insert_task(quick)
                await tx.append_events([_created(quick, clock)])
            async with second.transaction(readonly=True) as tx:
                seen = await tx.org_events("org-a", 0, 10)
            assert [e.task_id for e in seen] == [quick.id]
            release.set()
            slow_id = await slow
            async with second.transaction(readonly=True) as tx:
                later = await tx.org_events("org-a", seen[-1].seq or 0, 10)
            assert [e.task_id for e in later] == [slow_id]
        finally:
            for store in (first, second):
                await store.close()


def _created(task: Task, clock: ManualClock) -> TaskEvent:
    return TaskEvent(
        id=new_id(),
        task_id=task.id,
        org_id=task.org_id,
        at=clock.now(),
        actor="agent",
        actor_role="requester",
        event=Event.CREATE,
        from_status=None,
        to_status=Status.POSTED,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database, as two processes have."""
    if request.param == "sqlite":
        url, options = f"sqlite:///{tmp_path / 'two.db'}", {}
        first, second = await SqlStore.open(url), await SqlStore.open(url)
        yield first, second
    else:
        url = request.getfixturevalue("postgres_url")
        async with fresh_schema(url) as schema:
            options = {"connect_args": {"server_settings": {"search_path": schema}}}
            first, second = await SqlStore.open(url, **options), await SqlStore.open(url, **options)
            yield first, second
    await first.close()
    await second.close()


async def test_a_configuration_change_applies_at_once_in_every_process(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """A store keeps organisations' policies, groups and standing approvals in memory by
    their version: a change committed through another store applies to the next review."""
    admin = Principal(org_id="org-a", id="root", roles=frozenset({Role.ADMIN}))
    alice = Principal(org_id="org-a", id="alice", roles=frozenset({Role.REVIEWER}))
    here, there = (Engine(s, clock=ManualClock()) for s in two_stores)
    refund = {"kind": "review", "action": {"name": "refund", "args": {"amount": 5}}}
    assert (await here.create(AGENT, refund)).status is Status.POSTED  # kept: unconfigured

    await there.put_policy(admin, {"rules": [{"id": "no", "tools": ["refund"], "outcome": "deny"}]})
    denied = await here.create(AGENT, refund)
    assert denied.status is Status.VERIFIED and denied.decision is not None
    assert denied.decision.type.value == "reject"

    ask = {"id": "ask", "tools": ["refund"], "outcome": "ask", "reviewers": ["ops"]}
    await there.put_policy(admin, {"rules": [ask]})
    await there.put_group(admin, "ops", ["alice"])
    first = await here.create(AGENT, refund)
    assert first.status is Status.POSTED and first.policy is not None
    assert first.policy.groups == ("ops",)
    await here.decide(alice, first.id, Decision.approve(remember=Remember(ttl_seconds=600)))
    [granted] = await there.list_standing(admin)
    assert (await here.create(AGENT, refund)).status is Status.VERIFIED  # kept: granted

    await there.revoke_standing(admin, granted.id, "no longer")
    assert (await here.create(AGENT, refund)).status is Status.POSTED
    await there.put_group(admin, "ops", ["bob"])
    group = await here.create(AGENT, refund)
    with pytest.raises(NotEligible):
        await here.decide(alice, group.id, Decision.approve())


@pytest.mark.postgres
async def test_a_pooled_connection_that_died_while_it_rested_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted server kills the pool's connections: one that rested is pinged before
    use and replaced, so the next transaction runs (no ping for a busy connection)."""
    monkeypatch.setattr(_sql_drivers, "PING_IDLE", 0.0)
    async with fresh_schema(postgres_url) as schema:
        store = await SqlStore.open(
            postgres_url, connect_args={"server_settings": {"search_path": schema}}
        )
        try:
            pid = await store.run(lambda c: c.exec_driver_sql("SELECT pg_backend_pid()").scalar())
            killer = await asyncpg.connect(asyncpg_dsn(postgres_url))
            try:
                assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid) is True
            finally:
                await killer.close()
            assert await store.last_seq() == 0
            again = await store.run(lambda c: c.exec_driver_sql("SELECT pg_backend_pid()").scalar())
            assert again != pid
        finally:
            await store.close()
