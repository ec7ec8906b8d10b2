"""A memory transaction's ledger: postings checked against account floors, balances, holds,
settlements and payouts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from ..audit import posting_record
from ..errors import ConcurrencyConflict, InsufficientFunds
from ..ledger._accounts import Account, AccountKind
from ..ledger._model import (
    EntryRecord,
    Hold,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    Settlement,
    SettlementStatus,
)
from ..money import Currency
from ._memory_base import _TransactionBase


class _MemoryLedger(_TransactionBase):
    """The ledger, for :class:`~handrail.store.MemoryStore`'s transactions."""

    def _balance(self, account_id: str) -> int:  # call under the store's lock
        return self._store._balances.get(account_id, 0) + self._deltas.get(account_id, 0)

    def _check_floors(self, posting: Posting, balance: Callable[[str], int]) -> None:
        moves: dict[str, int] = defaultdict(int)
        accounts: dict[str, Account] = {}
        for entry in posting.entries:
            moves[entry.account.id] += entry.amount
            accounts[entry.account.id] = entry.account
        for account_id, amount in moves.items():
            current = balance(account_id)
            if accounts[account_id].floored and current + amount < 0:
                raise InsufficientFunds(account_id, posting.currency.value, -amount, current)

    async def find_posting(self, posting_id: str) -> Posting | None:
        for posting in self._postings:
            if posting.id == posting_id:
                return posting
        with self._store._lock:
            return self._store._postings.get(posting_id)

    async def post(self, posting: Posting) -> None:
        self._writable()
        if await self.find_posting(posting.id) is not None:
            raise ConcurrencyConflict("posting", posting.id)
        with self._store._lock:
            self._check_floors(posting, self._balance)
        for entry in posting.entries:
            self._deltas[entry.account.id] += entry.amount
            self._accounts[entry.account.id] = entry.account
        self._postings.append(posting)
        self._audit.append(posting_record(posting))

    async def balances(self, account_ids: Sequence[str]) -> dict[str, int]:
        with self._store._lock:
            return {a: self._balance(a) for a in account_ids}

    async def sum_balances(
        self, org_id: str, kind: AccountKind, currency: Currency, owner: str | None = None
    ) -> int:
        with self._store._lock:
            accounts = {**self._store._accounts, **self._accounts}
            return sum(
                self._balance(a.id)
                for a in accounts.values()
                if a.org_id == org_id
                and a.kind is kind
                and a.currency is currency
                and (owner is None or a.owner == owner)
            )

    async def spend_since(self, org_id: str, currency: Currency, since: datetime) -> int:
        with self._store._lock:
            committed = list(self._store._spend.get((org_id, currency), ()))
        staged = [p for p in self._postings if p.kind is PostingKind.RESOLVE]
        return sum(
            p.volume
            for p in committed + staged
            if p.org_id == org_id and p.currency is currency and p.created_at >= since
        )

    async def list_entries(
        self, account_id: str, after: int | None, limit: int
    ) -> list[EntryRecord]:
        with self._store._lock:
            entries = list(self._store._entries.get(account_id, ()))
        return [e for e in entries if after is None or e.seq > after][:limit]

    async def get_hold(self, task_id: str) -> Hold | None:
        with self._store._lock:
            return self._holds.get(task_id, self._store._holds.rows.get(task_id))

    async def put_hold(self, hold: Hold, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._holds.put(hold.task_id, hold, expected_version)

    async def settlements_for_task(self, task_id: str) -> list[Settlement]:
        with self._store._lock:
            found = [s for s in self._settlements.records() if s.task_id == task_id]
        return sorted(found, key=lambda s: s.id)

    async def due_settlements(self, now: datetime, limit: int) -> list[Settlement]:
        with self._store._lock:
            due = [
                s
                for s in self._settlements.records()
                if s.status is SettlementStatus.PENDING and s.due_at <= now
            ]
        return sorted(due, key=lambda s: (s.due_at, s.id))[:limit]

    async def put_settlement(self, settlement: Settlement, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._settlements.put(settlement.id, settlement, expected_version)

    async def find_payout(self, org_id: str, worker_id: str, key: str) -> PayoutRecord | None:
        with self._store._lock:
            for p in self._payouts.records():
                if (p.org_id, p.worker_id, p.key) == (org_id, worker_id, key):
                    return p
        return None

    async def payouts_of(self, org_id: str, worker_id: str) -> list[PayoutRecord]:
        with self._store._lock:
            mine = [
                p for p in self._payouts.records() if (p.org_id, p.worker_id) == (org_id, worker_id)
            ]
        return sorted(mine, key=lambda p: p.id)

    async def pending_payouts(self, limit: int) -> list[PayoutRecord]:
        with self._store._lock:
            pending = [p for p in self._payouts.records() if p.status is PayoutStatus.PENDING]
        return sorted(pending, key=lambda p: p.id)[:limit]

    async def put_payout(self, payout: PayoutRecord, *, expected_version: int | None) -> None:
        self._writable()
        with self._store._lock:
            self._payouts.put(payout.id, payout, expected_version)

    async def ledger_totals(self) -> dict[Currency, int]:
        with self._store._lock:
            accounts = {**self._store._accounts, **self._accounts}
            totals: dict[Currency, int] = defaultdict(int)
            for account in accounts.values():
                totals[account.currency] += self._balance(account.id)
        return dict(totals)
