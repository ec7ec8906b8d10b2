"""What the ledger answers without moving money: an organisation's balance, a worker's
earnings and payouts, an account's entries, the books' totals. Who may read what is
decided here (an organisation's money: its requesters and admins; a worker's earnings:
that worker, or an admin).

:class:`~handrail.ledger.Ledger` composes this mixin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from ..errors import NotFound, PermissionDenied, ValidationError
from ..models import Principal, Role
from ..money import Currency, Money
from ._accounts import Account, AccountKind
from ._model import Balance, Earnings, EntryRecord, PayoutRecord, PayoutStatus

if TYPE_CHECKING:  # the store imports ledger records: no cycle at run time
    from ..store import Store

MAX_PAGE = 500


class EntryPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: tuple[EntryRecord, ...]
    next_cursor: int | None = None


class _Reads:
    """The ledger's reads (its store is set by ``Ledger``)."""

    store: Store

    async def balance(self, principal: Principal, currency: Currency | str = "USD") -> Balance:
        """What the organisation may spend and what is held: for its requesters and
        admins (a reviewer sees its own earnings, not the organisation's money)."""
        if not principal.has(Role.REQUESTER):
            raise PermissionDenied(principal.id, "read the organisation's balance")
        cur = Currency(currency)
        org = principal.org_id
        async with self.store.transaction(readonly=True) as tx:
            available = (await tx.balances([Account.org(org, cur).id]))[Account.org(org, cur).id]
            held = await tx.sum_balances(org, AccountKind.ESCROW, cur)
            held += await tx.sum_balances(org, AccountKind.DISPUTE, cur)
        return Balance(
            org_id=org,
            available=Money(currency=cur, minor=available),
            held=Money(currency=cur, minor=held),
        )

    def _worker(self, principal: Principal, worker_id: str | None) -> str:
        worker = worker_id or principal.id
        if worker != principal.id and not principal.has(Role.ADMIN):
            raise PermissionDenied(principal.id, f"see {worker}'s earnings")
        return worker

    async def earnings(
        self, principal: Principal, currency: Currency | str = "USD", worker_id: str | None = None
    ) -> Earnings:
        """A worker's pending, available and lifetime earnings (their own, or any for an
        admin)."""
        cur = Currency(currency)
        worker = self._worker(principal, worker_id)
        org = principal.org_id
        pending, available = Account.pending(org, worker, cur), Account.available(org, worker, cur)
        async with self.store.transaction(readonly=True) as tx:
            got = await tx.balances([pending.id, available.id])
            paid = [
                p
                for p in await tx.payouts_of(org, worker)
                if p.amount.currency is cur and p.status is not PayoutStatus.FAILED
            ]
        paid_out = sum(p.amount.minor for p in paid)
        return Earnings(
            worker_id=worker,
            pending=Money(currency=cur, minor=got[pending.id]),
            available=Money(currency=cur, minor=got[available.id]),
            total=Money(currency=cur, minor=got[pending.id] + got[available.id] + paid_out),
        )

    async def entries(
        self, principal: Principal, account: Account, *, after: int | None = None, limit: int = 50
    ) -> EntryPage:
        """An account's entries, oldest first, a page at a time. An organisation's
        requesters and admins see its accounts; a worker sees its own earnings accounts
        (another's: ``PermissionDenied``; another organisation's: ``NotFound``)."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError.at("$.limit", f"must be between 1 and {MAX_PAGE}")
        worker_kinds = (AccountKind.WORKER_PENDING, AccountKind.WORKER_AVAILABLE)
        if account.org_id != principal.org_id:
            raise NotFound("account", account.id)  # another organisation's: not even 403
        visible = (
            principal.has(Role.ADMIN)
            or (account.kind in worker_kinds and account.owner == principal.id)
            or (account.kind not in worker_kinds and principal.has(Role.REQUESTER))
        )
        if not visible:
            raise PermissionDenied(principal.id, f"read the entries of {account.id}")
        async with self.store.transaction(readonly=True) as tx:
            found = await tx.list_entries(account.id, after, limit + 1)
        items = tuple(found[:limit])
        return EntryPage(items=items, next_cursor=items[-1].seq if len(found) > limit else None)

    async def payouts(
        self, principal: Principal, worker_id: str | None = None
    ) -> list[PayoutRecord]:
        worker = self._worker(principal, worker_id)
        async with self.store.transaction(readonly=True) as tx:
            return await tx.payouts_of(principal.org_id, worker)

    async def totals(self) -> dict[Currency, int]:
        """Every account summed per currency: all zeros when the books balance."""
        async with self.store.transaction(readonly=True) as tx:
            return await tx.ledger_totals()
