"""The migrations build exactly the schema the code declares (tables, columns, indexes and
the append-only guards), on SQLite and PostgreSQL, and upgrade a database at 0001."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, insert, select, text

from handrail import Principal, Role
from handrail.clock import ManualClock
from handrail.money import Money
from handrail.runtime import open_runtime
from handrail.store._sql_rows import task_row
from handrail.store._sql_tables import APPEND_ONLY, CONFIGURATION
from handrail.store.sql import SqlStore
from handrail.store.sql import metadata as engine_tables
from handrail.testing import make_task
from handrail_server.migrate import alembic_config, current_revision, migrate
from handrail_server.tables import idempotency
from handrail_server.tables import metadata as server_tables
from tests.postgres import fresh_schema

ADDED = {  # columns since 0001
    *("answer_ttl_seconds", "redact", "policy", "reviewer_groups", "batch_id", "escalate_at"),
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'm.db'}", create=False)
        yield store
        await store.close()
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_schema(url) as schema:
        store = await SqlStore.open(
            url, create=False, connect_args={"server_settings": {"search_path": schema}}
        )
        yield store
        await store.close()


def _drift(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, [engine_tables, server_tables]))


def _guards(conn: Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        query = text("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'")
    else:
        query = text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal"
        )
    return {row[0] for row in conn.execute(query)}


async def test_the_migrated_schema_is_the_declared_one(empty: SqlStore) -> None:
    await migrate(empty)
    assert await current_revision(empty) == "0007_sandbox"
    assert await empty.run(_drift, readonly=True) == []
    subscribed = {"webhook_endpoints", "notify_channels"}
    assert {*APPEND_ONLY, *CONFIGURATION, *subscribed} <= await empty.run(_guards, readonly=True)


async def test_0005_counts_organisations_configured_before_it(empty: SqlStore) -> None:
    """The backfill gives an organisation configured before ``org_config`` existed its
    row, and from then on the triggers move it on at each change of its configuration."""
    await migrate(empty, "0004_notify")
    groups = engine_tables.tables["reviewer_groups"]
    group = {"org_id": "acme", "name": "ops", "members": ["a"], "description": None, "version": 1}
    await empty.run(lambda c: c.execute(insert(groups).values(**group)))
    await migrate(empty)
    config = engine_tables.tables["org_config"]

    def versions(conn: Connection) -> dict[str, int]:
        return {r.org_id: r.version for r in conn.execute(select(config))}

    assert await empty.run(versions, readonly=True) == {"acme": 1}
    await empty.run(
        lambda c: c.execute(
            groups.update().where(groups.c.org_id == "acme").values(members=["a", "b"])
        )
    )
    await empty.run(lambda c: c.execute(groups.delete().where(groups.c.org_id == "acme")))
    assert await empty.run(versions, readonly=True) == {"acme": 3}


async def test_0006_moves_the_version_on_with_endpoints_and_channels(empty: SqlStore) -> None:
    """An organisation with a webhook endpoint before 0006 gets its ``org_config`` row; from
    then on every change of an endpoint or a channel moves the version on (what lets a store
    keep the organisation's subscriptions while the version holds)."""
    await migrate(empty, "0005_config")
    endpoints = server_tables.tables["webhook_endpoints"]
    channels = server_tables.tables["notify_channels"]
    now = ManualClock().now()
    endpoint = {
        "id": "ep-1",
        "org_id": "acme",
        "url": "http://127.0.0.1:9/hook",
        "secret": "s",
        "events": ["*"],
        "enabled": True,
        "created_at": now,
    }
    await empty.run(lambda c: c.execute(insert(endpoints).values(**endpoint)))
    await migrate(empty)
    config = engine_tables.tables["org_config"]

    def versions(conn: Connection) -> dict[str, int]:
        return {r.org_id: r.version for r in conn.execute(select(config))}

    assert await empty.run(versions, readonly=True) == {"acme": 1}
    off = endpoints.update().where(endpoints.c.id == "ep-1").values(enabled=False)
    await empty.run(lambda c: c.execute(off))
    await empty.run(lambda c: c.execute(endpoints.delete().where(endpoints.c.id == "ep-1")))
    assert await empty.run(versions, readonly=True) == {"acme": 3}
    channel = {
        "id": "ch-1",
        "org_id": "beta",
        "kind": "email",
        "name": "mail",
        "events": ["task.new"],
        "enabled": True,
        "created_at": now,
        "updated_at": now,
    }
    await empty.run(lambda c: c.execute(insert(channels).values(**channel)))
    await empty.run(lambda c: c.execute(channels.delete().where(channels.c.id == "ch-1")))
    assert await empty.run(versions, readonly=True) == {"acme": 3, "beta": 2}


async def test_0002_upgrades_a_database_with_tasks(empty: SqlStore) -> None:
    await migrate(empty, "0001")
    old = make_task(ManualClock(), id="t1", org_id="acme", redact=(), policy=None, sandbox=False)
    row = {k: v for k, v in task_row(old).items() if k not in ADDED}
    await empty.run(lambda c: c.execute(insert(engine_tables.tables["tasks"]).values(**row)))
    await migrate(empty)
    async with empty.transaction(readonly=True) as tx:
        task = await tx.get_task("acme", "t1")
    assert task is not None and task.policy is None and task.redact == ()
    assert task.answer_ttl_seconds is None
    count = await empty.run(
        lambda c: c.execute(
            select(func.count()).select_from(engine_tables.tables["policies"])
        ).scalar(),
        readonly=True,
    )
    assert count == 0


def test_downgrade_to_0001_and_back(tmp_path: Path) -> None:
    import asyncio  # noqa: PLC0415

    async def go() -> list[object]:
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'd.db'}", create=False)
        try:
            await migrate(store)
            await store.run(lambda c: command.downgrade(alembic_config(c), "0001"))
            assert await current_revision(store) == "0001"
            await migrate(store)
            return await store.run(_drift, readonly=True)
        finally:
            await store.close()

    assert asyncio.run(go()) == []


async def test_0007_moves_sandbox_rows_into_the_sandbox(empty: SqlStore) -> None:
    """Sandbox tasks made before the sandbox was a world of its own move into it with their
    history, hold, key and idempotency record; the money held for an open one goes back to
    the live balance, the sandbox's mint funds it there; the books still balance, and the
    moved task ends in the sandbox's money. Downgrading moves it back."""
    await migrate(empty, "0006_subscribed")
    runtime = await open_runtime(empty, create_schema=False, sweep_interval=None)
    engine, ledger = runtime.engine, runtime.ledger
    admin = Principal(org_id="acme", id="admin", roles=frozenset({Role.ADMIN}))
    agent = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}))
    old_sandbox = agent.model_copy(update={"sandbox": True})  # as hr_test_ keys acted
    await ledger.deposit(admin, Money.parse("10.00", "USD"), key="d1")
    paid = {
        "kind": "review",
        "action": {"name": "refund", "args": {}},
        "payout": {"currency": "USD", "amount": "1.00"},
    }
    live = await engine.create(agent, paid)
    play = await engine.create(old_sandbox, {**paid, "idempotency_key": "sb-1"})
    assert (await ledger.balance(admin)).available.amount == "7.80"  # the bug: live paid
    now = ManualClock().now()
    records = [
        {"org_id": "acme", "key": k, "route": "POST /v1/tasks", "fingerprint": "f"}
        | {"state": "done", "status_code": 201, "body": {"id": t.id}, "created_at": now}
        for k, t in (("k-live", live), ("k-play", play))
    ]
    await empty.run(lambda c: c.execute(insert(idempotency), records))

    await migrate(empty)
    world = Principal(
        org_id="acme~sandbox", id="agent", roles=frozenset({Role.REQUESTER}), sandbox=True
    )
    async with empty.transaction(readonly=True) as tx:
        assert await tx.get_task("acme", play.id) is None
        assert (await tx.get_task("acme", live.id)) is not None
        moved = await tx.find_by_key("acme~sandbox", "sb-1")
    assert moved is not None and moved.id == play.id and moved.org_id == "acme~sandbox"
    assert [e.event for e in await engine.history(world, play.id)] == ["create"]
    live_balance = await ledger.balance(admin)
    assert (live_balance.available.amount, live_balance.held.amount) == ("8.90", "1.10")
    play_balance = await ledger.balance(world)
    assert (play_balance.available.amount, play_balance.held.amount) == ("0.00", "1.10")
    assert all(v == 0 for v in (await ledger.totals()).values())
    kept = await empty.run(
        lambda c: dict(c.execute(select(idempotency.c.key, idempotency.c.org_id)).all()),
        readonly=True,
    )
    assert kept == {"k-live": "acme", "k-play": "acme~sandbox"}

    await engine.cancel(world, play.id)  # its money goes back to the sandbox
    play_balance = await ledger.balance(world)
    assert (play_balance.available.amount, play_balance.held.amount) == ("1.10", "0.00")
    assert (await ledger.balance(admin)).available.amount == "8.90"
    assert (await engine.verify_chain("acme")).ok
    assert all(v == 0 for v in (await ledger.totals()).values())

    await empty.run(lambda c: command.downgrade(alembic_config(c), "0006_subscribed"))
    async with empty.transaction(readonly=True) as tx:
        back = await tx.get_task("acme", play.id)
    assert back is not None and back.status.value == "cancelled"
    await runtime.stop_sweeps()
