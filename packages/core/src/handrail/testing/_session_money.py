"""The ledger, roles and tenancy, as conformance cases: deposits (idempotent by key),
balance, earnings, entries and payouts; refusals by role; other organisations' tasks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import (
    InsufficientFunds,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from ..ledger import Account
from ..lifecycle import Status
from ..money import Currency, Money
from ..session import Session
from ._session_kit import SessionCases, SessionFactory, judgment, refused, review

__all__ = ["AccessCases", "MoneyCases"]

USD = Currency.USD


class MoneyCases(SessionCases):
    async def test_deposit_is_idempotent_by_key(
        self, sessions: SessionFactory, admin: Session
    ) -> None:
        ten = Money.parse("10.00", "USD")
        posting = await admin.deposit(ten, key="first-credit")
        again = await admin.deposit(ten, key="first-credit")
        assert again.id == posting.id
        balance = await admin.balance()
        assert (balance.org_id, balance.available) == (sessions.org_id, ten)
        assert balance.held == Money.parse("0", "USD")
        blank = await refused(ValidationError, admin.deposit(ten, key=" "))
        assert [e.path for e in blank.errors] == ["$.key"]

    async def test_paid_work_moves_money(
        self, sessions: SessionFactory, admin: Session, requester: Session, alice: Session
    ) -> None:
        await admin.deposit(Money.parse("10.00", "USD"), key="fund")
        task = await requester.create(judgment(payout={"currency": "USD", "amount": "1.00"}))
        assert task.payout == Money.parse("1.00", "USD")
        held = await requester.balance()
        assert held.held.minor >= 100  # the payout (and any fee) held in escrow
        assert held.available.minor == 1000 - held.held.minor
        await alice.claim(task.id)
        assert (await alice.submit(task.id, {"label": "cat"})).status is Status.VERIFIED
        earned = await alice.earnings()
        assert earned.worker_id == "alice"
        assert earned.total.currency is USD and earned.total.minor > 0
        assert earned.pending.minor + earned.available.minor == earned.total.minor
        assert (await admin.earnings(worker_id="alice")).total == earned.total
        page = await admin.entries(Account.org(sessions.org_id, USD))
        assert page.items and page.items[0].amount == 1000
        mine = await alice.entries(Account.pending(sessions.org_id, "alice", USD))
        assert sum(e.amount for e in mine.items) == earned.pending.minor

    async def test_payouts(self, admin: Session, alice: Session) -> None:
        assert await alice.payouts() == []
        assert await admin.payouts(worker_id="alice") == []
        short = await refused(
            InsufficientFunds, alice.request_payout(Money.parse("5.00", "USD"), key="p1")
        )
        assert (short.code, short.currency) == ("insufficient_funds", "USD")
        assert short.needed > short.available
        tiny = await refused(
            ValidationError, alice.request_payout(Money.parse("0.01", "USD"), key="p2")
        )
        assert [e.path for e in tiny.errors] == ["$.amount"]
        blank = await refused(
            ValidationError, alice.request_payout(Money.parse("5.00", "USD"), key="")
        )
        assert [e.path for e in blank.errors] == ["$.key"]


class AccessCases(SessionCases):
    async def test_roles_are_enforced(
        self, requester: Session, alice: Session, admin: Session
    ) -> None:
        task = await requester.create(review())
        denied = await refused(PermissionDenied, alice.put_policy({"rules": []}))
        assert (denied.code, denied.principal) == ("permission_denied", "alice")
        await refused(PermissionDenied, alice.get_policy())
        await refused(PermissionDenied, requester.put_policy({"rules": []}))
        await refused(PermissionDenied, requester.explain_policy(review()))
        await refused(PermissionDenied, alice.list_groups())
        await refused(PermissionDenied, requester.queue())
        await refused(PermissionDenied, requester.claim(task.id))
        await refused(PermissionDenied, requester.wait_for_work(timeout=0.1))
        await refused(PermissionDenied, alice.create(review()))
        await refused(PermissionDenied, alice.cancel(task.id))
        await refused(PermissionDenied, alice.verify(task.id))
        await refused(PermissionDenied, requester.fail(task.id, "no"))
        await refused(PermissionDenied, alice.mint_decision_token(task.id, "alice"))
        await refused(PermissionDenied, alice.audit_entries())
        await refused(PermissionDenied, alice.verify_audit())
        await refused(PermissionDenied, requester.request_payout(Money.parse("5", "USD"), key="k"))
        assert (await requester.get(task.id)).status is Status.POSTED
        assert (await admin.get(task.id)).version == task.version

    async def test_other_organisations_tasks_are_not_found(
        self, requester: Session, outsider: Session, alice: Session
    ) -> None:
        task = await requester.create(review())
        theirs = await outsider.create(review())
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: outsider.get(task.id),
            lambda: outsider.history(task.id),
            lambda: outsider.cancel(task.id),
            lambda: outsider.claim(task.id),
            lambda: outsider.decide(task.id, {"type": "approve"}),
            lambda: outsider.submit(task.id, {"type": "approve"}),
            lambda: outsider.verify(task.id, {"type": "approve"}),
            lambda: outsider.fail(task.id, "no"),
            lambda: outsider.dispute(task.id, "no"),
            lambda: outsider.mint_decision_token(task.id, "alice"),
            lambda: alice.claim(theirs.id),
            lambda: requester.get(theirs.id),
        ]
        for call in calls:
            error = await refused(NotFound, call())
            assert error.code == "not_found" and error.id in (task.id, theirs.id)
        assert task.id not in {t.id for t in (await outsider.list()).items}
        assert task.id not in {t.id for t in await outsider.queue()}
        assert theirs.id not in {t.id for t in await alice.queue()}
        assert (await requester.get(task.id)).status is Status.POSTED
        assert (await outsider.get_policy()).version == 0
        assert all(e.org_id != task.org_id for e in await outsider.audit_entries())
