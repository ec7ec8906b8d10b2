"""Push routing and the SLA: backups at 80%, re-routing and expiry at 100%. A fake clock
drives everything; nothing sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from handrail import (
    Engine,
    Event,
    ManualClock,
    MemoryStore,
    Money,
    Principal,
    Role,
    Status,
)
from handrail.dispatch import Dispatcher
from handrail.ledger import Ledger, LedgerEscrow
from handrail.sla import SlaScheduler

ORG = "org-a"
AGENT = Principal(org_id=ORG, id="agent", roles=frozenset({Role.REQUESTER}))
ADMIN = Principal(org_id=ORG, id="root", roles=frozenset({Role.ADMIN}))
YESNO = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}


def reviewer(name: str) -> Principal:
    return Principal(org_id=ORG, id=name, roles=frozenset({Role.REVIEWER}))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def world(clock: ManualClock) -> tuple[Engine, Ledger, Dispatcher, SlaScheduler]:
    store = MemoryStore()
    ledger = Ledger(store, clock=clock)
    engine = Engine(store, clock=clock, escrow=LedgerEscrow(ledger))
    for name, capacity in (("ann", 2), ("ben", 2), ("cid", 2)):
        await engine.put_worker(ADMIN, {"id": name, "skills": ["spam"], "capacity": capacity})
    dispatcher = Dispatcher(engine, ORG)
    await dispatcher.load()
    return engine, ledger, dispatcher, SlaScheduler(engine, [dispatcher])


def spec(**more: Any) -> dict[str, Any]:
    return {"kind": "judgment", "output_schema": YESNO, "task_type": "spam", **more}


async def test_the_dispatcher_pushes_to_the_best_worker(world: Any) -> None:
    engine, _, dispatcher, _ = world
    dispatcher.router.set_reliability(ORG, "ben", 0.99)
    task = await engine.create(AGENT, spec())
    (assigned,) = await dispatcher.dispatch_open()
    assert [a.worker_id for a in assigned.assignments] == ["ben"]
    claim = next(e for e in await engine.history(AGENT, task.id) if e.event is Event.CLAIM)
    assert claim.data == {"worker_id": "ben", "pushed_by": "dispatcher"}
    assert dispatcher.router.load(ORG, "ben") == 1  # followed from the commit
    await engine.submit(reviewer("ben"), task.id, {"ok": True})
    assert dispatcher.router.load(ORG, "ben") == 0


async def test_push_respects_capacity_and_skills(world: Any) -> None:
    engine, _, dispatcher, _ = world
    tasks = [await engine.create(AGENT, spec()) for _ in range(7)]
    other = await engine.create(AGENT, spec(task_type="kyc"))
    assigned = await dispatcher.dispatch_open()
    assert len(assigned) == 6  # three workers with two slots each
    holders = [t.assignments[0].worker_id for t in assigned]
    assert sorted(holders) == ["ann", "ann", "ben", "ben", "cid", "cid"]
    unassigned = {t.id for t in tasks} - {t.id for t in assigned}
    assert len(unassigned) == 1
    assert (await engine.get(AGENT, other.id)).assignments == ()  # nobody does kyc


async def test_a_stale_router_cannot_overload_a_worker(world: Any) -> None:
    engine, _, dispatcher, _ = world
    await engine.put_worker(ADMIN, {"id": "ann", "skills": ["spam"], "capacity": 1})
    first = await engine.create(AGENT, spec())
    await engine.claim(reviewer("ann"), first.id)
    dispatcher.router.set_load(ORG, "ann", 0)  # the router missed it
    dispatcher.router.set_reliability(ORG, "ann", 1.0)
    task = await engine.create(AGENT, spec())
    done = await dispatcher.dispatch(task)
    assert done is not None and done.assignments[0].worker_id != "ann"


async def test_backup_at_80_percent_reroute_at_100_then_expire(
    world: Any, clock: ManualClock
) -> None:
    engine, ledger, dispatcher, sla = world
    await ledger.deposit(ADMIN, Money.parse("5.00", "USD"), key="d")
    task = await engine.create(
        AGENT, spec(sla_seconds=100, max_attempts=2, payout={"currency": "USD", "amount": "1.00"})
    )
    (first,) = await dispatcher.dispatch_open()
    holder = first.assignments[0].worker_id

    clock.advance(79)
    report = await sla.tick()
    assert (report.backups, report.rerouted, report.expired) == ([], [], [])

    clock.advance(1)
    report = await sla.tick()
    (backed,) = report.backups
    assert backed.extra_slots == 1 and backed.backup_at is None
    (pushed,) = report.assigned
    backup = pushed.assignments[1].worker_id
    assert backup != holder
    assert (await sla.tick()).backups == []  # once only

    clock.advance(20)  # 100% of the SLA, nobody answered
    report = await sla.tick()
    (rerouted,) = report.rerouted
    assert (rerouted.attempt, rerouted.extra_slots) == (2, 0)
    assert rerouted.expires_at == clock.now() + (task.expires_at - task.created_at)
    assert {a.status.value for a in rerouted.assignments} == {"released"}
    (again,) = report.assigned
    fresh = again.assignments[-1].worker_id
    assert fresh not in {holder, backup}  # someone new
    assert (await ledger.balance(AGENT)).held == Money.parse("1.10", "USD")

    clock.advance(100)  # the last attempt's deadline
    report = await sla.tick()
    (expired,) = report.expired
    assert expired.status is Status.EXPIRED
    balance = await ledger.balance(AGENT)
    assert (balance.available, balance.held) == (
        Money.parse("5.00", "USD"),
        Money.parse("0", "USD"),
    )
    events = [e.event for e in await engine.history(AGENT, task.id)]
    assert events == [
        Event.CREATE,
        Event.CLAIM,
        Event.ADD_BACKUP,
        Event.CLAIM,
        Event.REROUTE,
        Event.CLAIM,
        Event.EXPIRE,
    ]
    assert all(dispatcher.router.load(ORG, w) == 0 for w in ("ann", "ben", "cid"))


async def test_the_first_answer_wins_over_the_backup(world: Any, clock: ManualClock) -> None:
    engine, _, dispatcher, sla = world
    task = await engine.create(AGENT, spec(sla_seconds=100))
    await dispatcher.dispatch_open()
    clock.advance(80)
    (pushed,) = (await sla.tick()).assigned
    backup = pushed.assignments[1].worker_id
    done = await engine.submit(reviewer(backup), task.id, {"ok": False})
    assert (done.status, done.output) == (Status.VERIFIED, {"ok": False})
    assert all(dispatcher.router.load(ORG, w) == 0 for w in ("ann", "ben", "cid"))


async def test_a_waiter_rides_through_a_reroute(world: Any, clock: ManualClock) -> None:
    engine, _, _, sla = world
    task = await engine.create(AGENT, spec(sla_seconds=10, max_attempts=3))
    clock.advance(10)
    (rerouted,) = (await sla.tick()).rerouted
    assert rerouted.status is Status.POSTED
    clock.advance(10)
    (rerouted,) = (await sla.tick()).rerouted
    assert rerouted.attempt == 3
    clock.advance(10)
    done = await engine.wait(AGENT, task.id, timeout=5)  # lapses it itself: the last attempt
    assert done.status is Status.EXPIRED
