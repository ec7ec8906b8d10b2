"""What the server adds to a create and a decision, counted (issue 18): the statements that
touch the server's own tables (webhook endpoints and outbox, notification channels,
contacts and outbox, idempotency records), the transactions, and the outbox workers'
pokes. Counts are exact (they are not timings); the kernel's and the store's own
statements are left out, so they may change without breaking these pins."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from handrail import ConcurrencyConflict
from handrail.store.sql import SqlStore
from handrail_server.settings import Settings
from handrail_server.tables import notify_outbox, webhook_outbox
from tests.postgres import fresh_database
from tests.server.conftest import Server, make_settings, review, running

SERVER_TABLES = (
    "webhook_endpoints",
    "webhook_outbox",
    "notify_channels",
    "notify_contacts",
    "notify_outbox",
    "idempotency",
)
_TABLE = re.compile(r"\b(" + "|".join(SERVER_TABLES) + r")\b")
_VERB = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@dataclass
class Tally:
    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    delivery_pokes: int = 0
    notify_pokes: int = 0

    def server(self) -> Counter[str]:
        """The server's own statements: ``"VERB table"`` → how many."""
        seen: Counter[str] = Counter()
        for sql in self.statements:
            tables = sorted(set(_TABLE.findall(sql)))
            verb = _VERB.match(sql)
            if tables and verb:
                seen[f"{verb.group(1).upper()} {'+'.join(tables)}"] += 1
        return seen

    @property
    def total(self) -> int:
        return len(self.statements)


def _sync_engine(store: SqlStore) -> Engine:
    engine: Any = store._driver.engine  # type: ignore[attr-defined]
    return engine if isinstance(engine, Engine) else engine.sync_engine


@contextmanager
def counting(server: Server) -> Iterator[Tally]:
    """Statements, transactions and pokes while the block runs."""
    tally = Tally()
    engine = _sync_engine(server.hub.store)

    def statement(conn: Any, cursor: Any, sql: str, *rest: Any) -> None:
        if not sql.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            tally.statements.append(sql)

    def begin(conn: Any) -> None:
        tally.begins += 1

    def commit(conn: Any) -> None:
        tally.commits += 1

    def rollback(conn: Any) -> None:
        tally.rollbacks += 1

    hub = server.hub
    delivery_poke, notify_poke = hub.delivery.poke, hub.notifications.poke

    def poked_delivery() -> None:
        tally.delivery_pokes += 1
        delivery_poke()

    def poked_notify() -> None:
        tally.notify_pokes += 1
        notify_poke()

    listeners = [
        ("before_cursor_execute", statement),
        ("begin", begin),
        ("commit", commit),
        ("rollback", rollback),
    ]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    hub.delivery.poke = poked_delivery  # type: ignore[method-assign]
    hub.notifications.poke = poked_notify  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)
        hub.delivery.poke = delivery_poke  # type: ignore[method-assign]
        hub.notifications.poke = notify_poke  # type: ignore[method-assign]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'counts.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_database(url, "handrail_counts") as made:
        yield made


def _quiet_settings(tmp_path: Path, database: str) -> Settings:
    """No background jobs: nothing but the request touches the database (the SMTP relay
    named for the email channel is never reached)."""
    return make_settings(
        tmp_path,
        database_url=database,
        run_background=False,
        smtp_host="127.0.0.1",
        smtp_port=9,
        smtp_security="none",
    )


@pytest.fixture
async def server(tmp_path: Path, database: str) -> AsyncIterator[Server]:
    settings = _quiet_settings(tmp_path, database)
    async with running(settings) as started:
        # keys stay known for the test: a key's lookup (1 s by default) is no share of
        # the request being counted
        started.hub.auth.ttl = 3600.0
        yield started


def _keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


PROBE = "SELECT notify_channels+webhook_endpoints"  # what is subscribed: one statement


async def _warm(server: Server) -> None:
    """Keys looked up and cached, a first task posted: what every later request finds."""
    c, a = server.client, server.a
    assert (await c.post("/v1/tasks", json=review(), headers=a.requester)).status_code == 201
    assert (await c.get("/v1/queue", headers=a.reviewer)).status_code == 200


async def _outboxes(server: Server) -> tuple[int, int]:
    def count(conn: Any) -> tuple[int, int]:
        webhooks = conn.execute(select(func.count()).select_from(webhook_outbox)).scalar_one()
        notes = conn.execute(select(func.count()).select_from(notify_outbox)).scalar_one()
        return int(webhooks), int(notes)

    return await server.hub.store.run(count, readonly=True)


async def _subscribe(server: Server) -> None:
    """An endpoint for every event, an email channel for new reviews, a reviewer's address."""
    c, admin = server.client, server.a.admin
    made = await c.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"], "enabled": True},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    channel = await c.post(
        "/v1/notifications/channels",
        json={"kind": "email", "name": "mail", "events": ["task.new"]},
        headers=admin,
    )
    assert channel.status_code == 201, channel.text
    contact = await c.put(
        "/v1/notifications/contacts/acme-reviewer", json={"email": "r@example.com"}, headers=admin
    )
    assert contact.status_code == 200, contact.text


async def test_a_create_with_nothing_subscribed_queues_nothing_and_pokes_nobody(
    server: Server,
) -> None:
    await _warm(server)
    with counting(server) as tally:
        made = await server.client.post("/v1/tasks", json=review(), headers=server.a.requester)
    assert made.status_code == 201
    _show("create", tally)
    # was: endpoints, contacts, channels (3), then one probe; now the probe's answer is kept
    # while the organisation's configuration version (read for the policy) holds
    assert tally.server() == {}
    assert (tally.begins, tally.commits, tally.rollbacks) == (1, 1, 0)
    assert (tally.delivery_pokes, tally.notify_pokes) == (0, 0)  # was 1 and 1
    assert await _outboxes(server) == (0, 0)


async def test_a_keyed_create_is_one_transaction_and_its_replay_the_stored_response(
    server: Server,
) -> None:
    c, a = server.client, server.a
    await _warm(server)
    with counting(server) as keyed:
        made = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "k-1"))
    assert made.status_code == 201 and "idempotency-replayed" not in made.headers
    _show("keyed create", keyed)
    # was 3 transactions: SELECT + INSERT (a savepoint) of the record; the create; its UPDATE
    assert keyed.server() == {"INSERT idempotency": 1}
    assert (keyed.begins, keyed.commits, keyed.rollbacks) == (1, 1, 0)
    assert (keyed.delivery_pokes, keyed.notify_pokes) == (0, 0)
    plain_statements = keyed.total - 1  # the same create without a key, less the record

    with counting(server) as replay:
        again = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "k-1"))
    assert again.status_code == 201 and again.headers["idempotency-replayed"] == "true"
    assert again.json() == made.json()
    _show("replay", replay)
    # the create's transaction finds the task by its key (and writes nothing), then the
    # record is read: two transactions where there was one, for a request that is rare
    assert replay.server() == {"SELECT idempotency": 1}
    assert (replay.begins, replay.commits, replay.rollbacks) == (2, 2, 0)
    assert replay.total < plain_statements

    with counting(server) as other:
        refused = await c.post("/v1/tasks", json=review("x"), headers=_keyed(a.requester, "k-1"))
    assert refused.status_code == 422 and refused.json()["code"] == "idempotency_key_reused"
    _show("another body", other)
    assert await _outboxes(server) == (0, 0)


async def test_a_decision_reads_the_subscriptions_once(server: Server) -> None:
    c, a = server.client, server.a
    await _warm(server)
    task = (await c.post("/v1/tasks", json=review(), headers=a.requester)).json()
    with counting(server) as tally:
        answer = await c.post(
            f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=a.reviewer
        )
    assert answer.status_code == 200, answer.text
    _show("decision", tally)
    assert tally.server() == {}  # was: the endpoints once per move (3), then one probe
    assert (tally.begins, tally.commits, tally.rollbacks) == (1, 1, 0)
    assert (tally.delivery_pokes, tally.notify_pokes) == (0, 0)


async def test_subscribed_changes_read_each_subscription_once_and_poke_their_workers(
    server: Server,
) -> None:
    c, a = server.client, server.a
    await _subscribe(server)
    await _warm(server)
    queued = await _outboxes(server)
    with counting(server) as created:
        made = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "s-1"))
    assert made.status_code == 201
    _show("subscribed keyed create", created)
    assert created.server() == {
        "INSERT idempotency": 1,
        "SELECT webhook_endpoints": 1,
        "INSERT webhook_outbox": 1,
        "SELECT notify_channels": 1,
        "SELECT notify_contacts": 1,
        "INSERT notify_outbox": 1,
    }
    assert (created.begins, created.commits) == (1, 1)
    assert (created.delivery_pokes, created.notify_pokes) == (1, 1)
    after_create = await _outboxes(server)
    assert after_create == (queued[0] + 1, queued[1] + 1)

    with counting(server) as decided:
        answer = await c.post(
            f"/v1/tasks/{made.json()['id']}/decision", json={"type": "approve"}, headers=a.reviewer
        )
    assert answer.status_code == 200, answer.text
    _show("subscribed decision", decided)
    # assigned, submitted, verified: three events, the endpoints read once
    assert decided.server() == {"SELECT webhook_endpoints": 1, "INSERT webhook_outbox": 3}
    assert (decided.begins, decided.commits) == (1, 1)
    assert (decided.delivery_pokes, decided.notify_pokes) == (1, 0)
    assert await _outboxes(server) == (after_create[0] + 3, after_create[1])


async def test_a_keyed_create_the_policy_decides_stores_the_decided_task(
    server: Server,
) -> None:
    """The record is written with the task, and rewritten once when the policy decides the
    task in the same transaction: the replay is the decided task."""
    c, a = server.client, server.a
    rules = [{"id": "ok", "tools": ["send_email"], "outcome": "allow"}]
    assert (await c.put("/v1/policy", json={"rules": rules}, headers=a.admin)).status_code == 200
    await _warm(server)
    with counting(server) as tally:
        made = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "p-1"))
    assert made.status_code == 201 and made.json()["status"] == "verified"
    _show("policy-decided keyed create", tally)
    assert tally.server() == {"INSERT idempotency": 1, "UPDATE idempotency": 1}
    assert (tally.begins, tally.commits) == (1, 1)
    again = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "p-1"))
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == made.json()


async def test_an_endpoint_added_in_another_process_is_seen_by_the_next_change(
    tmp_path: Path, database: str
) -> None:
    """The first server keeps "nothing subscribed" for the organisation; an endpoint and a
    channel added through a second server on the same database move the configuration
    version on (the tables' triggers), so the first server's next create probes again and
    queues both outbox rows."""
    settings = _quiet_settings(tmp_path, database)
    async with running(settings) as one, running(settings) as two:
        await _warm(one)
        with counting(one) as kept:
            assert (
                await one.client.post("/v1/tasks", json=review(), headers=one.a.requester)
            ).status_code == 201
        assert kept.server() == {}  # "nothing subscribed", as kept
        await _subscribe(two)
        before = await _outboxes(one)
        with counting(one) as fresh:
            made = await one.client.post("/v1/tasks", json=review(), headers=one.a.requester)
        assert made.status_code == 201
        assert fresh.server()[PROBE] == 1
        assert await _outboxes(one) == (before[0] + 1, before[1] + 1)
        assert (fresh.delivery_pokes, fresh.notify_pokes) == (1, 1)


async def test_same_key_creates_racing_in_two_servers_make_one_task(
    tmp_path: Path, database: str
) -> None:
    """Two servers on one database (two processes, as far as the key is concerned): the
    twins race in the database, one task is made, and every answer is that task or 409."""
    settings = make_settings(tmp_path, database_url=database, run_background=False)
    async with running(settings) as one, running(settings) as two:
        headers = _keyed(one.a.requester, "race")
        answers = await asyncio.gather(
            *(
                server.client.post("/v1/tasks", json=review(), headers=headers)
                for _ in range(4)
                for server in (one, two)
            )
        )
        codes = sorted(answer.status_code for answer in answers)
        assert set(codes) <= {201, 409}, codes
        made = {answer.json()["id"] for answer in answers if answer.status_code == 201}
        assert len(made) == 1
        fresh = [
            a for a in answers if a.status_code == 201 and "idempotency-replayed" not in a.headers
        ]
        assert len(fresh) >= 1
        listed = (await one.client.get("/v1/tasks", headers=one.a.requester)).json()["data"]
        assert [t["id"] for t in listed] == list(made)
        replay = await two.client.post("/v1/tasks", json=review(), headers=headers)
        assert replay.headers["idempotency-replayed"] == "true"
        assert replay.json() == fresh[0].json()


async def test_a_keyed_create_retried_after_a_conflict_stores_its_record_once(
    server: Server,
) -> None:
    """An attempt undone by a conflict after the record was written (in its transaction)
    leaves nothing; the retry writes the record with its own task."""
    c, a, engine = server.client, server.a, server.hub.engine
    conflicts = [ConcurrencyConflict("task", "new")]

    class Flaky:
        async def on_create(self, tx: Any, task: Any) -> None:
            if conflicts:
                raise conflicts.pop()

        async def on_transition(self, *args: Any) -> None:
            pass

    await _warm(server)
    engine.hooks = (*engine.hooks, Flaky())
    with counting(server) as tally:
        made = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "retry-1"))
    assert made.status_code == 201 and not conflicts
    assert tally.server()["INSERT idempotency"] == 2  # one per attempt, one committed
    assert (tally.begins, tally.commits, tally.rollbacks) == (2, 1, 1)
    again = await c.post("/v1/tasks", json=review(), headers=_keyed(a.requester, "retry-1"))
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == made.json()
    listed = (await c.get("/v1/tasks", headers=a.requester)).json()["data"]
    keyed = [t["id"] for t in listed if t["idempotency_key"] == "retry-1"]
    assert keyed == [made.json()["id"]]


def _show(name: str, tally: Tally) -> None:
    print(
        f"\n{name}: {tally.total} statements, {tally.begins} begins, {tally.commits} commits, "
        f"{tally.rollbacks} rollbacks, pokes {tally.delivery_pokes}/{tally.notify_pokes}, "
        f"server {dict(tally.server())}"
    )
