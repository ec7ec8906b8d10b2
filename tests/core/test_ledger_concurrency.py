"""The ledger under concurrent writers in several OS processes, on one PostgreSQL schema.

Each test starts worker processes (this module, run with ``python -c`` from the repository
root) that open their own ``SqlStore`` on a fresh schema, print ``ready``, wait for ``go``
so that they all start at once, run their share of the operations and print a JSON report
as their last line. The test process then checks the books against the database and the
reports: they balance to the unit, no floored account is or ever was below zero, every
balance is the sum of its entries, every ended task's escrow is empty, and every operation
the processes report as done is in the database exactly once.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from handrail import (
    Currency,
    Engine,
    InsufficientFunds,
    InvalidTransition,
    Money,
    NotAssigned,
    Principal,
    Role,
    Status,
    Task,
)
from handrail.ledger import Account, AccountKind, Ledger, LedgerEscrow, SandboxPayoutRail
from handrail.store.sql import SqlStore
from tests.postgres import asyncpg_dsn, fresh_schema

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
CHILD = "import sys; from tests.core.test_ledger_concurrency import child; child(sys.argv[1:])"
USD = Currency.USD
PROCESSES = 4

ORGS = ("acme", "globex", "initech")
WORKERS_PER_ORG = 4  # the same worker ids in every process: shared earnings and payouts
LANES = 4  # coroutines per process
OPS = 10_000  # across all processes
SEED_FUNDS = 2_000  # minor units each org holds before the run
SHARED_KEYS = 40  # deposit keys every process replays: each is credited once
SHARED_PAYOUT_KEYS = 6  # payout keys per worker that every process replays
RAIL_FEE = 2
QUEUE_READ = 20  # a queue read; QUEUE_KEEP of its tasks, at random, are tried in turn
QUEUE_KEEP = 3
SETTLE_BATCH = 5
MIX = {  # weights of the operations, out of 100
    "deposit": 10,
    "shared_deposit": 2,
    "create": 27,
    "work": 30,  # claim + submit
    "cancel": 8,
    "settle": 3,
    "payout": 9,
    "shared_payout": 3,
    "dispute": 4,  # and resolve the dispute
    "review": 4,  # an admin verifies or fails a task in manual review
}
ENDED = {"verified", "failed", "expired", "cancelled", "disputed"}

RACE_ORGS = ("solo-a", "solo-b", "solo-c")
RACE_PER_PROCESS = 3  # attempts per org per process
RACE_PAYOUT = "0.40"  # + the $0.10 minimum fee: each org is funded with exactly $0.50
RACE_FUNDS = 50
REPLAY_ORG = "replay"  # funded for many tasks, asked for the same one (one key) at once
REPLAY_FUNDS = 500

JUDGMENT = {
    "kind": "judgment",
    "output_schema": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}},
    },
}


def admin(org: str) -> Principal:
    return Principal(org_id=org, id="root", roles=frozenset({Role.ADMIN}))


def agent(org: str) -> Principal:
    return Principal(org_id=org, id="agent", roles=frozenset({Role.REQUESTER}))


def worker(org: str, j: int) -> Principal:
    return Principal(org_id=org, id=f"w{j}", roles=frozenset({Role.REVIEWER}))


def shared_deposit(k: int) -> tuple[str, Money]:
    """The org and amount of shared deposit key ``k``: the same in every process."""
    return ORGS[k % len(ORGS)], Money(currency=USD, minor=100 + 7 * k)


def shared_payout(k: int) -> Money:
    return Money(currency=USD, minor=100 + 5 * k)


def paid(minor: int, redundancy: int = 1) -> dict[str, Any]:
    payout = Money(currency=USD, minor=minor)
    return {**JUDGMENT, "payout": payout.model_dump(mode="json"), "redundancy": redundancy}


async def open_store(url: str, schema: str, *, create: bool = True) -> SqlStore:
    return await SqlStore.open(
        url, create=create, connect_args={"server_settings": {"search_path": schema}}
    )


def services(store: SqlStore) -> tuple[Ledger, Engine]:
    """Earnings settle at once (no hold period); the rail keeps a small fee."""
    rail = SandboxPayoutRail(fee_minor=RAIL_FEE)
    ledger = Ledger(store, hold_period=timedelta(0), payout_rail=rail)
    return ledger, Engine(store, escrow=LedgerEscrow(ledger))


# ---------------------------------------------------------------- the worker processes


def child(argv: Sequence[str]) -> None:
    """A worker process: ``mode url schema index``."""
    mode, url, schema, index = argv[0], argv[1], argv[2], int(argv[3])
    run = {"stress": stress, "race": race}[mode]
    report = asyncio.run(_child(run, url, schema, index))
    print(json.dumps(report), flush=True)


Run = Callable[[Ledger, Engine, int], Awaitable[dict[str, Any]]]


async def _child(run: Run, url: str, schema: str, index: int) -> dict[str, Any]:
    store = await open_store(url, schema, create=False)
    ledger, engine = services(store)
    try:
        # open the pool's connections now, so the race starts on the first statement
        await asyncio.gather(*(ledger.balance(agent(o)) for o in ORGS for _ in range(3)))
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            raise RuntimeError("expected go")
        started = time.perf_counter()
        report = await run(ledger, engine, index)
        report["seconds"] = time.perf_counter() - started
        return report
    finally:
        await store.close()


async def race(ledger: Ledger, engine: Engine, index: int) -> dict[str, Any]:
    """Create one paid task per attempt, all at once: the task's id or ``refused``."""
    spec = paid(Money.parse(RACE_PAYOUT, "USD").minor)

    async def attempt(org: str) -> str:
        key = {"idempotency_key": "once"} if org == REPLAY_ORG else {}
        try:
            task = await engine.create(agent(org), {**spec, **key})
        except InsufficientFunds:
            return "refused"
        return task.id

    orgs = [org for org in (*RACE_ORGS, REPLAY_ORG) for _ in range(RACE_PER_PROCESS)]
    outcomes = await asyncio.gather(*(attempt(org) for org in orgs))
    by_org: dict[str, list[str]] = {org: [] for org in (*RACE_ORGS, REPLAY_ORG)}
    for org, outcome in zip(orgs, outcomes, strict=True):
        by_org[org].append(outcome)
    return {"by_org": by_org}


class Lane:
    """One coroutine's share of the mixed operations, and what came of them."""

    def __init__(self, ledger: Ledger, engine: Engine, process: int, lane: int) -> None:
        self.ledger, self.engine = ledger, engine
        self.rng = random.Random(process * 1_000 + lane)
        self.tag = f"p{process}l{lane}"
        self.outcomes: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.shared_deposits: set[int] = set()
        self.shared_payouts: set[str] = set()
        self.verified: set[str] = set()  # tasks this lane saw verified
        self.cancelled: set[str] = set()
        self.failed: set[str] = set()  # failed by an admin in manual review
        self.settled: list[str] = []
        self.queues: dict[str, list[Task]] = {}  # by org: tasks seen open, not yet tried
        self.to_dispute: list[tuple[str, str]] = []
        self.to_review: list[tuple[str, str]] = []

    def org(self) -> str:
        return self.rng.choice(ORGS)

    def someone(self) -> Principal:
        return worker(self.org(), self.rng.randrange(WORKERS_PER_ORG))

    async def step(self, i: int) -> None:
        op = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if (op == "dispute" and not self.to_dispute) or (op == "review" and not self.to_review):
            op = "work"
        started = time.perf_counter()
        outcome = await getattr(self, op)(i)
        self.seconds[op] += time.perf_counter() - started
        self.outcomes[f"{op}:{outcome}"] += 1

    async def deposit(self, i: int) -> str:
        amount = Money(currency=USD, minor=self.rng.randint(100, 400))
        await self.ledger.deposit(admin(self.org()), amount, key=f"{self.tag}-{i}")
        return "ok"

    async def shared_deposit(self, i: int) -> str:
        k = self.rng.randrange(SHARED_KEYS)
        org, amount = shared_deposit(k)
        await self.ledger.deposit(admin(org), amount, key=f"shared-{k}")
        self.shared_deposits.add(k)
        return "ok"

    async def create(self, i: int) -> str:
        big = self.rng.random() < 0.05  # more than an org usually has: mostly refused
        reward = self.rng.randint(2_000, 6_000) if big else self.rng.randint(5, 80)
        redundancy = 2 if self.rng.random() < 0.2 else 1
        try:
            await self.engine.create(agent(self.org()), paid(reward, redundancy))
        except InsufficientFunds:
            return "refused"
        return "ok"

    async def work(self, i: int) -> str:
        org = self.org()
        me = worker(org, self.rng.randrange(WORKERS_PER_ORG))
        seen = self.queues.setdefault(org, [])
        if not seen:  # one queue read serves a few claims: some are stale by then
            found = await self.engine.queue(me, limit=QUEUE_READ)
            seen += self.rng.sample(found, min(len(found), QUEUE_KEEP))
            if not seen:
                return "empty"
        task = seen.pop()
        try:
            await self.engine.claim(me, task.id)
        except InvalidTransition:
            return "claim_lost"  # the slot went to someone else, or the task was cancelled
        answer = True if task.redundancy == 1 else self.rng.random() < 0.5
        try:
            done = await self.engine.submit(me, task.id, {"ok": answer})
        except (InvalidTransition, NotAssigned):
            return "submit_lost"  # cancelled meanwhile (or the same worker, elsewhere)
        if done.status is Status.VERIFIED:
            self.verified.add(done.id)
            self.to_dispute.append((org, done.id))
        elif done.status is Status.MANUAL_REVIEW:  # the two answers differ
            self.to_review.append((org, done.id))
        return done.status.value

    async def cancel(self, i: int) -> str:
        org = self.org()
        page = await self.engine.list(
            agent(org), status=["posted", "assigned"], limit=20, newest_first=True
        )
        if not page.items:
            return "empty"
        try:
            done = await self.engine.cancel(agent(org), self.rng.choice(page.items).id)
        except InvalidTransition:
            return "lost"  # answered meanwhile
        self.cancelled.add(done.id)
        return "ok"

    async def settle(self, i: int) -> str:
        self.settled += [s.id for s in await self.ledger.settle_due(limit=SETTLE_BATCH)]
        return "ok"

    async def payout(self, i: int) -> str:
        amount = Money(currency=USD, minor=self.rng.randint(100, 150))
        try:
            await self.ledger.request_payout(self.someone(), amount, key=f"{self.tag}-{i}")
        except InsufficientFunds:
            return "refused"
        return "ok"

    async def shared_payout(self, i: int) -> str:
        me, k = self.someone(), self.rng.randrange(SHARED_PAYOUT_KEYS)
        try:
            done = await self.ledger.request_payout(me, shared_payout(k), key=f"shared-{k}")
        except InsufficientFunds:
            return "refused"
        self.shared_payouts.add(done.id)
        return "ok"

    async def dispute(self, i: int) -> str:
        org, task_id = self.to_dispute.pop(self.rng.randrange(len(self.to_dispute)))
        try:
            await self.engine.dispute(agent(org), task_id, "not what we asked")
        except InvalidTransition:
            return "refused"  # the earnings settled (or it is disputed already)
        uphold = self.rng.random() < 0.5
        try:
            await self.engine.resolve_dispute(admin(org), task_id, uphold=uphold, reason="seen")
        except InvalidTransition:
            return "open"
        return "upheld" if uphold else "overturned"

    async def review(self, i: int) -> str:
        org, task_id = self.to_review.pop(self.rng.randrange(len(self.to_review)))
        try:
            if self.rng.random() < 0.5:
                await self.engine.fail(admin(org), task_id, "no good")
                self.failed.add(task_id)
                return "failed"
            done = await self.engine.verify(admin(org), task_id, {"ok": self.rng.random() < 0.5})
        except InvalidTransition:
            return "lost"  # the same task, reviewed by another lane
        self.verified.add(done.id)
        return "verified"


async def stress(ledger: Ledger, engine: Engine, index: int) -> dict[str, Any]:
    share = -(-OPS // (PROCESSES * LANES))  # rounded up: at least OPS in all
    lanes = [Lane(ledger, engine, index, n) for n in range(LANES)]

    async def drive(lane: Lane) -> None:
        for i in range(share):
            await lane.step(i)

    await asyncio.gather(*(drive(lane) for lane in lanes))

    def union(attr: str) -> list[Any]:
        return sorted(set().union(*(getattr(lane, attr) for lane in lanes)))

    return {
        "outcomes": dict(sum((lane.outcomes for lane in lanes), Counter())),
        "op_seconds": {op: sum(lane.seconds[op] for lane in lanes) for op in MIX},
        "shared_deposits": union("shared_deposits"),
        "shared_payouts": union("shared_payouts"),
        "verified": union("verified"),
        "cancelled": union("cancelled"),
        "failed": union("failed"),
        "settled": [s for lane in lanes for s in lane.settled],
    }


# ---------------------------------------------------------------- the test process


async def run_children(mode: str, url: str, schema: str) -> list[dict[str, Any]]:
    """Start the worker processes, let them go at once, and collect their reports."""
    procs = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", CHILD, mode, url, schema, str(i)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for i in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                _, err = await proc.communicate()
                raise AssertionError(f"a worker process did not start: {line!r}\n{err.decode()}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), 600
        )  # a hang guard only: a loaded machine is slow
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    reports = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out.decode().splitlines()[-1]))
    return reports


async def check_books(ledger: Ledger, db: asyncpg.Connection) -> None:
    """What holds after any mix of operations."""
    assert await ledger.totals() == {USD: 0}
    below = "SELECT count(*) FROM ledger_accounts WHERE floored AND balance < 0"
    assert await db.fetchval(below) == 0
    drift = await db.fetch(
        "SELECT a.id FROM ledger_accounts a LEFT JOIN (SELECT account_id, sum(amount) s"
        " FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id"
        " WHERE a.balance <> coalesce(e.s, 0)"
    )
    assert drift == []
    unbalanced = await db.fetch(
        "SELECT posting_id FROM ledger_entries GROUP BY posting_id HAVING sum(amount) <> 0"
    )
    assert unbalanced == []
    empty = await db.fetch(
        "SELECT p.id FROM ledger_postings p"
        " WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.posting_id = p.id)"
    )
    assert empty == []
    # An account's entries are written while its row is locked, so their order is the
    # order its balance moved in: the running balance of a floored account never dipped.
    dipped = await db.fetch(
        "SELECT DISTINCT account_id FROM (SELECT e.account_id, sum(e.amount) OVER"
        " (PARTITION BY e.account_id ORDER BY e.seq) AS running FROM ledger_entries e"
        " JOIN ledger_accounts a ON a.id = e.account_id WHERE a.floored) r WHERE running < 0"
    )
    assert dipped == []


async def check_escrow(ledger: Ledger, db: asyncpg.Connection, orgs: Sequence[str]) -> None:
    """An ended task's escrow is empty and its hold resolved; an open task's escrow is
    exactly its hold; a dispute account holds money only while its task is disputed; and
    no org or worker balance is negative, through the ledger's own views."""
    rows = await db.fetch(
        "SELECT t.id, t.org_id, t.status, h.status AS hold, coalesce(a.balance, 0) AS escrow,"
        " h.reward_minor * h.slots + h.fee_minor AS amount FROM tasks t"
        " JOIN ledger_holds h ON h.task_id = t.id"
        " LEFT JOIN ledger_accounts a ON a.kind = 'escrow' AND a.owner = t.id"
    )
    assert rows, "no paid tasks"
    held: Counter[str] = Counter()
    for r in rows:
        if r["status"] in ENDED:
            assert (r["escrow"], r["hold"]) == (0, "resolved"), dict(r)
        else:
            assert (r["escrow"], r["hold"]) == (r["amount"], "held"), dict(r)
            held[r["org_id"]] += r["amount"]
    frozen = await db.fetch(
        "SELECT a.owner, t.status FROM ledger_accounts a JOIN tasks t ON t.id = a.owner"
        " WHERE a.kind = 'dispute' AND a.balance <> 0"
    )
    assert all(r["status"] == "disputed" for r in frozen), frozen
    async with ledger.store.transaction(readonly=True) as tx:
        for org in orgs:
            assert await tx.sum_balances(org, AccountKind.ESCROW, USD) == held[org]
            account = Account.org(org, USD).id
            assert (await tx.balances([account]))[account] >= 0
    for org in orgs:
        assert (await ledger.balance(agent(org), USD)).available.minor >= 0
        for j in range(WORKERS_PER_ORG):
            earned = await ledger.earnings(admin(org), USD, worker_id=f"w{j}")
            assert earned.pending.minor >= 0 and earned.available.minor >= 0


async def postings_by_kind(db: asyncpg.Connection) -> Counter[str]:
    rows = await db.fetch("SELECT kind, count(*) AS n FROM ledger_postings GROUP BY kind")
    return Counter({r["kind"]: r["n"] for r in rows})


async def test_many_processes_keep_the_books(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as schema:
        store = await open_store(postgres_url, schema)
        ledger, _ = services(store)
        db = await asyncpg.connect(
            asyncpg_dsn(postgres_url), server_settings={"search_path": schema}
        )
        try:
            for org in ORGS:
                await ledger.deposit(admin(org), Money(currency=USD, minor=SEED_FUNDS), key="seed")
            started = time.perf_counter()
            reports = await run_children("stress", postgres_url, schema)
            elapsed = time.perf_counter() - started

            outcomes: Counter[str] = sum((Counter(r["outcomes"]) for r in reports), Counter())
            spent: Counter[str] = sum((Counter(r["op_seconds"]) for r in reports), Counter())
            ops = sum(outcomes.values())
            print(f"\n{ops} operations in {PROCESSES} processes × {LANES} lanes: {elapsed:.1f} s")
            print("  " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
            assert ops >= 10_000
            for outcome in ("create:refused", "work:claim_lost", "payout:ok", "payout:refused"):
                assert outcomes[outcome] > 0, f"no {outcome}: the mix did not race"

            await check_books(ledger, db)
            await check_escrow(ledger, db, ORGS)

            # every operation reported done is in the database, once
            kinds = await postings_by_kind(db)
            print(f"  postings: {dict(sorted(kinds.items()))}")
            print("  lane-seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in spent.most_common()))
            verified = set().union(*(r["verified"] for r in reports))
            cancelled = set().union(*(r["cancelled"] for r in reports))
            failed = set().union(*(r["failed"] for r in reports))
            assert not verified & cancelled and not verified & failed
            created = outcomes["create:ok"]
            assert kinds["hold"] == created
            assert await db.fetchval("SELECT count(*) FROM tasks") == created
            assert await db.fetchval("SELECT count(*) FROM ledger_holds") == created

            shared = set().union(*(r["shared_deposits"] for r in reports))
            assert kinds["deposit"] == len(ORGS) + outcomes["deposit:ok"] + len(shared)
            for k in shared:  # credited once, whichever process won
                org, amount = shared_deposit(k)
                credited = await db.fetch(
                    "SELECT amount FROM ledger_entries WHERE posting_id = $1 AND amount > 0",
                    f"deposit:{Account.org(org, USD).id}:shared-{k}",
                )
                assert [r["amount"] for r in credited] == [amount.minor]

            paid_out = await db.fetchval(
                "SELECT count(*) FROM ledger_postings WHERE kind = 'resolve' AND volume > 0"
            )
            assert paid_out == len(verified)
            assert kinds["resolve"] == len(verified) + len(cancelled) + len(failed)
            settled = [s for r in reports for s in r["settled"]]
            assert len(settled) == len(set(settled)) == kinds["settle"]
            shared_payouts = set().union(*(r["shared_payouts"] for r in reports))
            payouts = outcomes["payout:ok"] + len(shared_payouts)
            assert kinds["payout"] == kinds["payout_sent"] == payouts
            assert await db.fetchval("SELECT count(*) FROM ledger_payouts") == payouts
            assert kinds["payout_failed"] == kinds["adjust"] == 0
            opened = outcomes["dispute:upheld"] + outcomes["dispute:overturned"]
            assert kinds["freeze"] == opened + outcomes["dispute:open"]
            assert kinds["unfreeze"] == outcomes["dispute:upheld"]
            assert kinds["overturn"] == outcomes["dispute:overturned"]

            statuses = dict(await db.fetch("SELECT status, count(*) FROM tasks GROUP BY status"))
            assert statuses.get("cancelled", 0) == len(cancelled)
            assert statuses.get("failed", 0) == len(failed) + outcomes["dispute:overturned"]
            assert statuses.get("disputed", 0) == outcomes["dispute:open"]
            answered = sum(statuses.get(s, 0) for s in ("verified", "failed", "disputed"))
            assert answered == len(verified) + len(failed)
            assert statuses.get("expired", 0) == 0
        finally:
            await db.close()
            await store.close()


async def test_racing_creates_hold_money_once(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as schema:
        store = await open_store(postgres_url, schema)
        ledger, engine = services(store)
        db = await asyncpg.connect(
            asyncpg_dsn(postgres_url), server_settings={"search_path": schema}
        )
        try:
            for org in RACE_ORGS:
                await ledger.deposit(admin(org), Money(currency=USD, minor=RACE_FUNDS), key="one")
            replay = Money(currency=USD, minor=REPLAY_FUNDS)
            await ledger.deposit(admin(REPLAY_ORG), replay, key="one")
            reports = await run_children("race", postgres_url, schema)
            winners = {}
            for org in RACE_ORGS:
                outcomes = [o for r in reports for o in r["by_org"][org]]
                assert len(outcomes) == PROCESSES * RACE_PER_PROCESS
                won = [o for o in outcomes if o != "refused"]
                assert len(won) == 1, outcomes
                winners[org] = won[0]
                balance = await ledger.balance(agent(org), USD)
                assert (balance.available.minor, balance.held.minor) == (0, RACE_FUNDS)
                task = await engine.get(agent(org), winners[org])
                assert task.payout == Money.parse(RACE_PAYOUT, "USD")
            # the same request from every process at once: one task, held once
            replayed = {o for r in reports for o in r["by_org"][REPLAY_ORG]}
            assert len(replayed) == 1, replayed
            balance = await ledger.balance(agent(REPLAY_ORG), USD)
            assert (balance.available.minor, balance.held.minor) == (REPLAY_FUNDS - 50, 50)
            await check_books(ledger, db)
            assert await postings_by_kind(db) == {"deposit": 4, "hold": 4}
            for org, task_id in winners.items():  # and the money comes back whole
                await engine.cancel(agent(org), task_id)
                balance = await ledger.balance(agent(org), USD)
                assert (balance.available.minor, balance.held.minor) == (RACE_FUNDS, 0)
            await check_books(ledger, db)
        finally:
            await db.close()
            await store.close()
