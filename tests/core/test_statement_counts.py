"""What each engine operation costs the database, counted exactly: statements and
transactions on SQLite and PostgreSQL (a regression that adds one fails here; timings
are the benchmarks' business, not the tests')."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from handrail import Decision, Engine, Principal, Role, Task
from handrail.store.sql import SqlStore
from tests.core._statements import counted

AGENT = Principal(org_id="org-a", id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id="org-a", id="alice", roles=frozenset({Role.REVIEWER}))
REVIEW: dict[str, Any] = {"kind": "review", "action": {"name": "send_email", "args": {}}}
JUDGMENT: dict[str, Any] = {
    "kind": "judgment",
    "output_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
}

# statements per operation (our BEGIN left out), each in one transaction
EXPECTED: dict[str, dict[str, int]] = {
    # the version of the organisation's configuration; the task; the audit seal (SQLite:
    # the guarded head move, the entry, then the history; PostgreSQL: one statement for
    # the three)
    "create": {"sqlite": 5, "postgresql": 3},
    "keyed create": {"sqlite": 6, "postgresql": 4},  # and the lookup by key
    "keyed create, replayed": {"sqlite": 1, "postgresql": 1},  # the task with its slots
    # the task with its slots (one statement); the worker; the task and the new slot; the
    # seal; the history
    "claim": {"sqlite": 7, "postgresql": 5},
    # the task; the worker's record, read unlocked (verification and learning share it);
    # the crowd's recent durations and labels (one statement); what the answer taught
    # (SQLite: the record rewritten, then a new sample; PostgreSQL: one upsert adding to
    # the record, with the sample); the task and its slot; the seal and the history
    "submit": {"sqlite": 10, "postgresql": 7},
    "decide": {"sqlite": 11, "postgresql": 8},  # as submit, and the worker (a claim)
}


async def _warm(engine: Engine) -> None:
    """One of each first: the caches a process fills once (audit head, configuration)."""
    done = await engine.create(AGENT, REVIEW)
    await engine.decide(ALICE, done.id, Decision.approve())
    judged = await engine.create(AGENT, JUDGMENT)
    await engine.claim(ALICE, judged.id)
    await engine.submit(ALICE, judged.id, {"ok": True})


async def _count(store: SqlStore, op: str, run: Callable[[], Awaitable[Task]]) -> Task:
    with counted(store) as sent:
        task = await run()
    expected = EXPECTED[op][store.dialect]
    listed = "\n  ".join(s[:140] for s in sent.statements)
    assert (len(sent), sent.transactions) == (expected, 1), f"{op}:\n  {listed}"
    return task


async def test_each_operation_costs_what_it_did(store: SqlStore) -> None:
    engine = Engine(store)
    await _warm(engine)
    review = await _count(store, "create", lambda: engine.create(AGENT, REVIEW))
    keyed = {**REVIEW, "idempotency_key": "k-1"}
    first = await _count(store, "keyed create", lambda: engine.create(AGENT, keyed))
    again = await _count(store, "keyed create, replayed", lambda: engine.create(AGENT, keyed))
    assert again.id == first.id
    await _count(store, "decide", lambda: engine.decide(ALICE, review.id, Decision.approve()))
    judged = await engine.create(AGENT, JUDGMENT)
    await _count(store, "claim", lambda: engine.claim(ALICE, judged.id))
    await _count(store, "submit", lambda: engine.submit(ALICE, judged.id, {"ok": True}))
