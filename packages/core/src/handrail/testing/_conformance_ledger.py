"""The ledger contract: atomic postings, rollback, entry pages and sums, the spend window,
and the versioned ledger records (holds, settlements, payouts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from ..clock import ManualClock
from ..errors import ConcurrencyConflict, InsufficientFunds
from ..ids import new_id
from ..ledger import (
    Account,
    AccountKind,
    Hold,
    HoldStatus,
    PayoutRecord,
    PayoutStatus,
    PostingKind,
    Settlement,
)
from ..money import Currency, Money
from ..store import Store, Transaction
from ._conformance_support import USD, _posting, make_task


class LedgerContract:
    """Part of :class:`~handrail.testing.StoreConformance`; needs its ``store``, ``store_factory``,
    ``clock`` and ``engine`` fixtures."""

    # ---------------------------------------------------------------- the ledger contract

    async def test_postings_move_money_atomically(self, store: Store, clock: ManualClock) -> None:
        org, funding = Account.org("org-a", USD), Account.funding(USD)
        deposit = _posting("d1", clock, (funding, -500), (org, 500))
        async with store.transaction() as tx:
            await tx.post(deposit)
            assert await tx.find_posting("d1") == deposit
        too_much = _posting("spend", clock, (org, -501), (Account.fees(USD), 501))
        with pytest.raises(InsufficientFunds) as caught:
            async with store.transaction() as tx:
                await tx.post(too_much)
        assert (caught.value.account, caught.value.needed, caught.value.available) == (
            org.id,
            501,
            500,
        )
        with pytest.raises(ConcurrencyConflict):
            async with store.transaction() as tx:
                await tx.post(deposit)
        async with store.transaction(readonly=True) as tx:
            got = await tx.balances([org.id, funding.id, Account.fees(USD).id])
            assert got == {org.id: 500, funding.id: -500, Account.fees(USD).id: 0}
            assert await tx.ledger_totals() == {USD: 0}
            assert await tx.find_posting("spend") is None

    async def test_a_rolled_back_posting_leaves_no_trace(
        self, store: Store, clock: ManualClock
    ) -> None:
        org = Account.org("org-a", USD)

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            async with store.transaction() as tx:
                await tx.post(_posting("d", clock, (Account.funding(USD), -5), (org, 5)))
                raise Boom
        async with store.transaction(readonly=True) as tx:
            assert await tx.balances([org.id]) == {org.id: 0}
            assert await tx.list_entries(org.id, None, 10) == []
            assert await tx.find_posting("d") is None

    async def test_entries_page_and_sums_scope(self, store: Store, clock: ManualClock) -> None:
        escrow_a = Account.escrow("org-a", "t1", USD)
        escrow_b = Account.escrow("org-a", "t2", USD)
        elsewhere = Account.escrow("org-b", "t3", USD)
        async with store.transaction() as tx:
            for i, account in enumerate((escrow_a, escrow_b, elsewhere, escrow_a)):
                await tx.post(_posting(f"p{i}", clock, (Account.funding(USD), -7), (account, 7)))
        async with store.transaction(readonly=True) as tx:
            first = await tx.list_entries(escrow_a.id, None, 1)
            rest = await tx.list_entries(escrow_a.id, first[0].seq, 10)
            assert [(e.posting_id, e.amount) for e in first + rest] == [("p0", 7), ("p3", 7)]
            assert await tx.sum_balances("org-a", AccountKind.ESCROW, USD) == 21
            assert await tx.sum_balances("org-a", AccountKind.ESCROW, USD, owner="t2") == 7
            assert await tx.sum_balances("org-b", AccountKind.ESCROW, Currency.SATS) == 0

    async def test_spend_counts_resolved_volume_in_the_window(
        self, store: Store, clock: ManualClock
    ) -> None:
        old = clock.now()
        async with store.transaction() as tx:
            await tx.post(
                _posting(
                    "r0",
                    clock,
                    (Account.funding(USD), -3),
                    (Account.fees(USD), 3),
                    kind=PostingKind.RESOLVE,
                    volume=300,
                )
            )
        clock.advance(days=31)
        async with store.transaction() as tx:
            await tx.post(
                _posting(
                    "r1",
                    clock,
                    (Account.funding(USD), -4),
                    (Account.fees(USD), 4),
                    kind=PostingKind.RESOLVE,
                    volume=400,
                )
            )
            await tx.post(
                _posting(
                    "h",
                    clock,
                    (Account.funding(USD), -5),
                    (Account.fees(USD), 5),
                    kind=PostingKind.HOLD,
                    volume=500,
                )
            )
        async with store.transaction(readonly=True) as tx:
            assert await tx.spend_since("org-a", USD, old) == 700
            assert await tx.spend_since("org-a", USD, clock.now() - timedelta(days=30)) == 400

    async def test_versioned_ledger_records(self, store: Store, clock: ManualClock) -> None:
        task = make_task(clock)
        async with store.transaction() as tx:
            await tx.insert_task(task)
        hold = Hold(
            task_id=task.id,
            org_id="org-a",
            reward=Money.parse("1", "USD"),
            slots=2,
            fee=Money.parse("0.10", "USD"),
        )
        now = clock.now()
        due = Settlement(
            id="s1",
            org_id="org-a",
            worker_id="w",
            task_id=task.id,
            amount=Money.parse("1", "USD"),
            due_at=now,
        )
        later = due.model_copy(update={"id": "s2", "due_at": now + timedelta(days=1)})
        payout = PayoutRecord(
            id=new_id(),
            org_id="org-a",
            worker_id="w",
            key="k",
            amount=Money.parse("2", "USD"),
            fee=Money.parse("0", "USD"),
            rail="sandbox",
            created_at=now,
            updated_at=now,
        )
        async with store.transaction() as tx:
            await tx.put_hold(hold, expected_version=None)
            await tx.put_settlement(later, expected_version=None)
            await tx.put_settlement(due, expected_version=None)
            await tx.put_payout(payout, expected_version=None)
        clashes: list[Callable[[Transaction], Awaitable[None]]] = [
            lambda tx: tx.put_hold(hold, expected_version=None),  # the same task twice
            lambda tx: tx.put_payout(  # the same (org, worker, key) twice
                payout.model_copy(update={"id": new_id()}), expected_version=None
            ),
            lambda tx: tx.put_hold(  # a stale version
                hold.model_copy(update={"version": 6}), expected_version=5
            ),
        ]
        for clash in clashes:
            with pytest.raises(ConcurrencyConflict):
                async with store.transaction() as tx:
                    await clash(tx)
        sent = payout.model_copy(update={"status": PayoutStatus.SENT, "version": 2})
        async with store.transaction() as tx:
            await tx.put_hold(
                hold.model_copy(update={"status": HoldStatus.RESOLVED, "version": 2}),
                expected_version=1,
            )
            await tx.put_payout(sent, expected_version=1)
        async with store.transaction(readonly=True) as tx:
            stored = await tx.get_hold(task.id)
            assert stored is not None and (stored.status, stored.version) == (
                HoldStatus.RESOLVED,
                2,
            )
            assert [s.id for s in await tx.due_settlements(now, 10)] == ["s1"]
            assert [s.id for s in await tx.settlements_for_task(task.id)] == ["s1", "s2"]
            assert await tx.find_payout("org-a", "w", "k") == sent
            assert await tx.find_payout("org-b", "w", "k") is None
            assert await tx.payouts_of("org-a", "w") == [sent]
            assert await tx.pending_payouts(10) == []
