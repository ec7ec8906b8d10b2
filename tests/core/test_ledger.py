"""The escrow ledger: every money movement at its lifecycle point, on every store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
from sqlalchemy import text

from handrail import (
    Currency,
    Engine,
    Handrail,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransition,
    ManualClock,
    MemoryStore,
    Money,
    NotFound,
    PermissionDenied,
    Principal,
    Role,
    Status,
    StoreError,
    ValidationError,
)
from handrail.ledger import (
    Account,
    Entry,
    FeeSchedule,
    FeeTier,
    Ledger,
    LedgerEscrow,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    RailResult,
    SandboxFundingRail,
    SandboxPayoutRail,
    percent_of,
)
from handrail.store import Store
from handrail.store.sql import SqlStore
from tests.postgres import fresh_schema

USD = Currency.USD
ORG = "acme"
ADMIN = Principal(org_id=ORG, id="root", roles=frozenset({Role.ADMIN}))
AGENT = Principal(org_id=ORG, id="agent", roles=frozenset({Role.REQUESTER}))
ALICE = Principal(org_id=ORG, id="alice", roles=frozenset({Role.REVIEWER}))
BOB = Principal(org_id=ORG, id="bob", roles=frozenset({Role.REVIEWER}))
RIVAL = Principal(org_id="rival", id="root", roles=frozenset({Role.ADMIN}))
SCHEMA = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def paid(amount: str = "0.50", **fields: Any) -> dict[str, Any]:
    return {
        "kind": "judgment",
        "output_schema": SCHEMA,
        "payout": {"currency": "USD", "amount": amount},
        **fields,
    }


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [(5, 1_000, 1), (4, 1_000, 0), (15, 1_000, 2), (100, 1_000, 10), (333, 800, 27), (0, 500, 0)],
)
def test_percentages_round_half_up(amount: int, bps: int, expected: int) -> None:
    assert percent_of(amount, bps) == expected


def test_fee_tiers_follow_trailing_spend() -> None:
    fees = FeeSchedule()
    base = usd("100.00")
    assert fees.fee(base, 0).amount == "10.00"  # 10% under $5k
    assert fees.fee(base, 500_000).amount == "8.00"  # 8% from $5k
    assert fees.fee(base, 2_500_000).amount == "5.00"  # 5% from $25k
    assert fees.fee(usd("0.50"), 0).amount == "0.10"  # the minimum
    with pytest.raises(ValueError, match="ascend"):
        FeeSchedule(tiers={USD: (FeeTier(100, 10), FeeTier(50, 5), FeeTier(None, 1))})
    with pytest.raises(ValueError, match="open tier"):
        FeeSchedule(tiers={USD: (FeeTier(100, 10),)})


def test_account_ids_cannot_blur_together() -> None:
    assert Account.pending("a:b", "c", USD).id != Account.pending("a", "b:c", USD).id
    assert not Account.funding(USD).floored
    assert Account.org("x", USD).floored


def test_postings_must_balance() -> None:
    now = ManualClock().now()
    one = Account.org("o", USD)
    with pytest.raises(pydantic.ValidationError, match="balance"):
        Posting(
            id="p",
            kind=PostingKind.DEPOSIT,
            org_id="o",
            currency=USD,
            entries=(Entry(account=one, amount=5),),
            created_at=now,
        )
    with pytest.raises(pydantic.ValidationError, match="non-zero"):
        Entry(account=one, amount=0)
    with pytest.raises(pydantic.ValidationError, match="its currency"):
        Posting(
            id="p",
            kind=PostingKind.DEPOSIT,
            org_id="o",
            currency=USD,
            entries=(
                Entry(account=Account.org("o", Currency.SATS), amount=5),
                Entry(account=Account.funding(Currency.SATS), amount=-5),
            ),
            created_at=now,
        )


# ---------------------------------------------------------------- on every store


@dataclass
class Books:
    store: Store
    clock: ManualClock
    rail: SandboxPayoutRail
    ledger: Ledger
    engine: Engine

    async def balances(self, *accounts: Account) -> list[int]:
        async with self.store.transaction(readonly=True) as tx:
            found = await tx.balances([a.id for a in accounts])
        return [found[a.id] for a in accounts]

    async def balanced(self) -> None:
        assert all(v == 0 for v in (await self.ledger.totals()).values())

    async def done(self, spec: dict[str, Any], *answers: tuple[Principal, Any]) -> Any:
        task = await self.engine.create(AGENT, spec)
        for who, answer in answers:
            await self.engine.claim(who, task.id)
            task = await self.engine.submit(who, task.id, answer)
        return task


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def books(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Books]:
    clock = ManualClock()

    def build(store: Store) -> Books:
        rail = SandboxPayoutRail(fee_minor=5)
        ledger = Ledger(store, clock=clock, payout_rail=rail)
        return Books(
            store, clock, rail, ledger, Engine(store, clock=clock, escrow=LedgerEscrow(ledger))
        )

    if request.param == "memory":
        yield build(MemoryStore())
    elif request.param == "sqlite":
        store = await SqlStore.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        yield build(store)
        await store.close()
    else:
        url = request.getfixturevalue("postgres_url")
        async with fresh_schema(url) as schema:
            options = {"connect_args": {"server_settings": {"search_path": schema}}}
            store = await SqlStore.open(url, **options)
            yield build(store)
            await store.close()


class TestDeposits:
    async def test_a_key_is_one_deposit(self, books: Books) -> None:
        first = await books.ledger.deposit(ADMIN, usd("10.00"), key="wire-1")
        again = await books.ledger.deposit(ADMIN, usd("10.00"), key="wire-1")
        assert again == first
        with pytest.raises(IdempotencyConflict):
            await books.ledger.deposit(ADMIN, usd("11.00"), key="wire-1")
        assert (await books.ledger.balance(AGENT)).available == usd("10.00")
        await books.balanced()

    async def test_who_may_deposit(self, books: Books) -> None:
        # no funding rail: live money enters only as an admin's credit
        with pytest.raises(PermissionDenied, match="no funding rail"):
            await books.ledger.deposit(AGENT, usd("1000.00"), key="k", reference="wire-123")
        with pytest.raises(PermissionDenied):
            await books.ledger.deposit(ALICE, usd("1.00"), key="k")
        with pytest.raises(PermissionDenied):  # a sandbox key credits only as a requester
            await books.ledger.deposit(
                ALICE.model_copy(update={"sandbox": True}), usd("1"), key="k"
            )
        with pytest.raises(ValidationError, match="more than zero"):
            await books.ledger.deposit(ADMIN, usd("0"), key="k")
        sandbox = AGENT.model_copy(update={"sandbox": True})
        await books.ledger.deposit(sandbox, usd("1.00"), key="k")
        assert (await books.ledger.balance(AGENT)).available == usd("1.00")
        books.ledger.funding_rail = SandboxFundingRail()  # a rail that confirms transfers
        with pytest.raises(ValidationError, match="names its transfer"):
            await books.ledger.deposit(AGENT, usd("1.00"), key="k3")
        await books.ledger.deposit(AGENT, usd("2.00"), key="k2", reference="wire 7")
        assert (await books.ledger.balance(AGENT)).available == usd("3.00")
        assert (await books.ledger.balance(RIVAL)).available == usd("0")

    async def test_who_may_read_the_money(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("4.00"), key="d")
        assert (await books.ledger.balance(AGENT)).available == usd("4.00")
        with pytest.raises(PermissionDenied):  # a reviewer: its own earnings only
            await books.ledger.balance(ALICE)
        org = Account.org(AGENT.org_id, Currency.USD)
        assert len((await books.ledger.entries(AGENT, org)).items) == 1
        with pytest.raises(PermissionDenied):  # the account exists: 403, not 404
            await books.ledger.entries(ALICE, org)
        with pytest.raises(NotFound):  # another organisation's stays unseen
            await books.ledger.entries(RIVAL, org)


class TestTaskMoney:
    async def test_a_hold_reserves_reward_times_slots_plus_fee(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("5.00"), key="d")
        task = await books.engine.create(AGENT, paid("0.50", redundancy=3))
        balance = await books.ledger.balance(AGENT)
        assert (balance.held, balance.available) == (usd("1.65"), usd("3.35"))  # 1.50 + 10%
        hold = await _hold(books, task.id)
        assert (hold.reward, hold.slots, hold.fee) == (usd("0.50"), 3, usd("0.15"))
        await books.balanced()

    async def test_short_funds_create_nothing(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("0.59"), key="d")
        with pytest.raises(InsufficientFunds) as caught:
            await books.engine.create(AGENT, paid("0.50"))  # needs 0.60 with the minimum fee
        assert (caught.value.needed, caught.value.available) == (60, 59)
        assert (await books.engine.list(AGENT)).items == ()
        assert await books.store.last_seq() == 0
        assert (await books.ledger.balance(AGENT)).available == usd("0.59")

    async def test_a_sandbox_task_is_funded_from_the_sandboxs_mint(self, books: Books) -> None:
        """No deposit: a sandbox hold its balance cannot cover is topped up first by the
        hold's amount (a balanced ``top_up`` from the tenant's ``sandbox_mint``); a covered
        one is not, and a live one never is (``test_short_funds_create_nothing``)."""
        play = Principal(org_id="play", id="bot", roles=frozenset({Role.REQUESTER}), sandbox=True)
        first = await books.engine.create(play, paid("0.50"))
        balance = await books.ledger.balance(play)
        assert (balance.available, balance.held) == (usd("0"), usd("0.60"))
        mint, org = Account.mint("play", USD), Account.org("play", USD)
        assert await books.balances(mint, org) == [-60, 0]
        await books.engine.cancel(play, first.id)
        await books.engine.create(play, paid("0.50"))  # 0.60 available: no top-up
        assert await books.balances(mint, org) == [-60, 0]
        kinds = [e.kind for e in (await books.ledger.entries(play, org)).items]
        top_up, hold, resolve = PostingKind.TOP_UP, PostingKind.HOLD, PostingKind.RESOLVE
        assert kinds == [top_up, hold, resolve, hold]
        await books.balanced()

    async def test_verification_pays_workers_and_platform(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("5.00"), key="d")
        task = await books.done(
            paid("0.40", redundancy=2), (ALICE, {"ok": True}), (BOB, {"ok": True})
        )
        assert task.status is Status.VERIFIED
        balance = await books.ledger.balance(AGENT)
        # 0.80 in rewards; 10% is 0.08, below the 0.10 minimum fee
        assert (balance.available, balance.held) == (usd("4.10"), usd("0"))
        for who in (ALICE, BOB):
            earned = await books.ledger.earnings(who)
            assert (earned.pending, earned.available, earned.total) == (
                usd("0.40"),
                usd("0"),
                usd("0.40"),
            )
        assert await books.balances(Account.fees(USD)) == [10]
        await books.balanced()

    @pytest.mark.parametrize("ending", ["cancel", "expire", "fail"])
    async def test_every_other_ending_refunds_everything(self, books: Books, ending: str) -> None:
        await books.ledger.deposit(ADMIN, usd("5.00"), key="d")
        task = await books.engine.create(AGENT, paid("1.00", redundancy=2, sla_seconds=60))
        if ending == "cancel":
            await books.engine.cancel(AGENT, task.id)
        elif ending == "expire":
            books.clock.advance(61)
            await books.engine.expire_due()
        else:
            for who, ok in ((ALICE, True), (BOB, False)):
                await books.engine.claim(who, task.id)
                await books.engine.submit(who, task.id, {"ok": ok})
            await books.engine.fail(ADMIN, task.id, "both unusable")
        balance = await books.ledger.balance(AGENT)
        assert (balance.available, balance.held) == (usd("5.00"), usd("0"))
        assert await books.balances(Account.escrow(ORG, task.id, USD), Account.fees(USD)) == [0, 0]
        with pytest.raises(InvalidTransition):  # the hold resolved once and for all
            async with books.store.transaction() as tx:
                await books.ledger.resolve(
                    tx, await books.engine.get(AGENT, task.id), ["alice"], books.clock.now()
                )
        await books.balanced()

    async def test_only_accepted_answers_are_paid(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("5.00"), key="d")
        task = await books.done(
            paid("1.00", redundancy=2), (ALICE, {"ok": True}), (BOB, {"ok": False})
        )
        assert task.status is Status.MANUAL_REVIEW
        await books.engine.verify(ADMIN, task.id, {"ok": False})
        assert (await books.ledger.earnings(BOB)).pending == usd("1.00")
        assert (await books.ledger.earnings(ALICE)).pending == usd("0")
        balance = await books.ledger.balance(AGENT)
        # 5.00 - 1.00 reward - 0.10 fee (charged on the one reward paid, at the held rate)
        assert balance.available == usd("3.90")
        await books.balanced()

    async def test_an_approved_estimate_reprices_the_hold(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("3.00"), key="d")
        task = await books.engine.create(AGENT, paid("1.00", require_estimate=True))
        assert (await books.ledger.balance(AGENT)).held == usd("1.10")
        await books.engine.offer_estimate(ALICE, task.id, amount=usd("2.00"))
        await books.engine.approve_estimate(AGENT, task.id)
        assert (await books.ledger.balance(AGENT)).held == usd("2.20")
        done = await books.engine.submit(ALICE, task.id, {"ok": True})
        assert done.status is Status.VERIFIED
        assert (await books.ledger.earnings(ALICE)).pending == usd("2.00")
        await books.balanced()

    async def test_an_estimate_the_org_cannot_afford_is_not_approved(self, books: Books) -> None:
        await books.ledger.deposit(ADMIN, usd("1.50"), key="d")
        task = await books.engine.create(AGENT, paid("1.00", require_estimate=True))
        await books.engine.offer_estimate(ALICE, task.id, amount=usd("5.00"))
        with pytest.raises(InsufficientFunds):
            await books.engine.approve_estimate(AGENT, task.id)
        assert (await books.engine.get(AGENT, task.id)).status is Status.ESTIMATE_PENDING
        assert (await books.ledger.balance(AGENT)).held == usd("1.10")


class TestDisputes:
    async def _verified(self, books: Books) -> Any:
        await books.ledger.deposit(ADMIN, usd("5.00"), key="d")
        return await books.done(paid("1.00"), (ALICE, {"ok": True}))

    async def test_uphold_gives_the_earnings_back(self, books: Books) -> None:
        task = await self._verified(books)
        await books.engine.dispute(AGENT, task.id, "wrong answer")
        assert (await books.ledger.earnings(ALICE)).pending == usd("0")
        assert (await books.ledger.balance(AGENT)).held == usd("1.10")  # frozen
        await books.engine.resolve_dispute(ADMIN, task.id, uphold=True, reason="it was right")
        assert (await books.ledger.earnings(ALICE)).pending == usd("1.00")
        assert await books.balances(Account.fees(USD)) == [10]
        books.clock.advance(days=7)
        assert [s.worker_id for s in await books.ledger.settle_due()] == ["alice"]
        await books.balanced()

    async def test_overturn_refunds_the_organisation(self, books: Books) -> None:
        task = await self._verified(books)
        await books.engine.dispute(AGENT, task.id, "wrong answer")
        await books.engine.resolve_dispute(ADMIN, task.id, uphold=False, reason="it was wrong")
        balance = await books.ledger.balance(AGENT)
        assert (balance.available, balance.held) == (usd("5.00"), usd("0"))
        assert (await books.ledger.earnings(ALICE)).total == usd("0")
        books.clock.advance(days=8)
        assert await books.ledger.settle_due() == []
        await books.balanced()

    async def test_no_dispute_after_settlement(self, books: Books) -> None:
        task = await self._verified(books)
        books.clock.advance(days=7)
        await books.ledger.settle_due()
        with pytest.raises(InvalidTransition, match="settled"):
            await books.engine.dispute(AGENT, task.id, "too late")
        assert (await books.engine.get(AGENT, task.id)).status is Status.VERIFIED


class TestSettlementAndPayouts:
    async def _earned(self, books: Books, amount: str = "3.00") -> None:
        await books.ledger.deposit(ADMIN, usd("10.00"), key="d")
        await books.done(paid(amount), (ALICE, {"ok": True}))

    async def test_earnings_settle_after_the_hold_period(self, books: Books) -> None:
        await self._earned(books)
        books.clock.advance(days=6, hours=23)
        assert await books.ledger.settle_due() == []
        books.clock.advance(hours=1)
        (settled,) = await books.ledger.settle_due()
        assert settled.amount == usd("3.00")
        assert await books.ledger.settle_due() == []
        earned = await books.ledger.earnings(ALICE)
        assert (earned.pending, earned.available) == (usd("0"), usd("3.00"))

    async def test_a_payout_deducts_the_rail_fee_once(self, books: Books) -> None:
        await self._earned(books)
        books.clock.advance(days=7)
        await books.ledger.settle_due()
        with pytest.raises(ValidationError, match=r"smallest payout is 1\.00 USD"):
            await books.ledger.request_payout(ALICE, usd("0.99"), key="p")
        payout = await books.ledger.request_payout(ALICE, usd("2.00"), key="p")
        assert (payout.status, payout.fee, payout.net) == (
            PayoutStatus.SENT,
            usd("0.05"),
            usd("1.95"),
        )
        assert await books.ledger.request_payout(ALICE, usd("2.00"), key="p") == payout
        with pytest.raises(IdempotencyConflict):
            await books.ledger.request_payout(ALICE, usd("1.00"), key="p")
        with pytest.raises(InsufficientFunds):
            await books.ledger.request_payout(ALICE, usd("1.01"), key="q")
        earned = await books.ledger.earnings(ALICE)
        assert (earned.available, earned.total) == (usd("1.00"), usd("3.00"))
        assert books.rail.sent == {payout.id: usd("1.95")}
        assert await books.balances(Account.payouts(USD), Account.rail_fees(USD)) == [195, 5]
        await books.balanced()

    async def test_a_refused_payout_returns_the_money(self, books: Books) -> None:
        await self._earned(books)
        books.clock.advance(days=7)
        await books.ledger.settle_due()
        books.rail.fail_with = "account closed"
        payout = await books.ledger.request_payout(ALICE, usd("2.00"), key="p")
        assert (payout.status, payout.failure) == (PayoutStatus.FAILED, "account closed")
        assert (await books.ledger.earnings(ALICE)).available == usd("3.00")
        await books.balanced()

    async def test_a_payout_interrupted_mid_send_is_finished_later(self, books: Books) -> None:
        await self._earned(books)
        books.clock.advance(days=7)
        await books.ledger.settle_due()
        stuck = asyncio.Event()

        class Hanging(SandboxPayoutRail):
            async def send(self, payout: PayoutRecord) -> RailResult:
                stuck.set()
                await asyncio.Event().wait()  # the process dies here
                raise AssertionError

        books.ledger.payout_rail = Hanging(fee_minor=5)
        request = asyncio.create_task(books.ledger.request_payout(ALICE, usd("2.00"), key="p"))
        await stuck.wait()
        request.cancel()
        (pending,) = await books.ledger.payouts(ALICE)
        assert pending.status is PayoutStatus.PENDING
        assert (await books.ledger.earnings(ALICE)).available == usd("1.00")  # in flight
        books.ledger.payout_rail = books.rail
        (finished,) = await books.ledger.reconcile_payouts()
        assert (finished.id, finished.status) == (pending.id, PayoutStatus.SENT)
        await books.balanced()


class TestEntries:
    async def test_pages_and_visibility(self, books: Books) -> None:
        for i in range(5):
            await books.ledger.deposit(ADMIN, usd("1.00"), key=f"d{i}")
        org = Account.org(ORG, USD)
        first = await books.ledger.entries(AGENT, org, limit=3)
        assert [e.amount for e in first.items] == [100] * 3
        rest = await books.ledger.entries(AGENT, org, after=first.next_cursor)
        assert len(rest.items) == 2 and rest.next_cursor is None
        assert {e.kind for e in first.items + rest.items} == {PostingKind.DEPOSIT}
        with pytest.raises(NotFound):
            await books.ledger.entries(RIVAL, org)
        with pytest.raises(PermissionDenied):
            await books.ledger.entries(AGENT, Account.pending(ORG, "alice", USD))
        with pytest.raises(PermissionDenied):
            await books.ledger.entries(ALICE, Account.pending(ORG, "bob", USD))
        assert (await books.ledger.entries(ALICE, Account.pending(ORG, "alice", USD))).items == ()
        with pytest.raises(PermissionDenied):
            await books.ledger.earnings(ALICE, worker_id="bob")


# ---------------------------------------------------------------- in the database too


@pytest.mark.parametrize(
    "books", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_the_database_refuses_bad_money(books: Books) -> None:
    assert isinstance(books.store, SqlStore)
    await books.ledger.deposit(ADMIN, usd("1.00"), key="d")
    statements = {
        "unbalanced posting": "INSERT INTO ledger_entries (posting_id, kind, account_id, amount, "
        "created_at) SELECT 'x', 'deposit', id, 5, CURRENT_TIMESTAMP FROM ledger_accounts "
        "WHERE kind = 'org_available'; INSERT INTO ledger_postings (id, kind, currency, volume, "
        "created_at, body) VALUES ('x', 'deposit', 'USD', 0, CURRENT_TIMESTAMP, '{}')",
        "negative balance": "UPDATE ledger_accounts SET balance = -1 WHERE kind = 'org_available'",
        "edited entry": "UPDATE ledger_entries SET amount = 1000",
        "deleted posting": "DELETE FROM ledger_postings",
    }
    for name, sql in statements.items():

        def run(conn: Any, sql: str = sql) -> None:
            for statement in sql.split("; "):
                conn.execute(text(statement))

        with pytest.raises(StoreError):
            await books.store.run(run)
        assert (await books.ledger.balance(AGENT)).available == usd("1.00"), name
    await books.balanced()


def test_the_client_moves_money() -> None:
    with Handrail.local(sandbox=True, hold_period=timedelta(0)) as hr:
        hr.ledger.deposit(usd("5.00"), key="start")
        assert hr.ask("Is it spam?", SCHEMA, payout={"currency": "USD", "amount": "2.00"}) == {
            "ok": True
        }
        assert hr.ledger.balance().available == usd("2.80")
        sandbox = hr.as_reviewer("sandbox")
        for _ in range(100):  # the sweep settles within a second
            if sandbox.ledger.earnings().available == usd("2.00"):
                break
            time.sleep(0.02)
        payout = sandbox.ledger.request_payout(usd("2.00"), key="all")
        assert payout.status is PayoutStatus.SENT
        assert [p.id for p in sandbox.ledger.payouts()] == [payout.id]


async def _hold(books: Books, task_id: str) -> Any:
    async with books.store.transaction(readonly=True) as tx:
        return await tx.get_hold(task_id)
