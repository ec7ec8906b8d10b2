"""Ledger records: postings (balanced transactions), their entries, settlements, payouts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from ..money import Currency, Money
from ._accounts import Account
from ._fees import percent_of

__all__ = [
    "Balance",
    "Earnings",
    "Entry",
    "EntryRecord",
    "Hold",
    "HoldStatus",
    "PayoutRecord",
    "PayoutStatus",
    "Posting",
    "PostingKind",
    "Settlement",
    "SettlementStatus",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PostingKind(StrEnum):
    DEPOSIT = "deposit"
    HOLD = "hold"
    ADJUST = "adjust"  # a hold grows or shrinks (an approved estimate changed the price)
    RESOLVE = "resolve"  # release all or part of a hold, void the rest: at most once
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    OVERTURN = "overturn"
    SETTLE = "settle"
    PAYOUT = "payout"
    PAYOUT_SENT = "payout_sent"
    PAYOUT_FAILED = "payout_failed"
    TOP_UP = "top_up"  # a sandbox's balance topped up from its mint, so a hold can be made


class Entry(_Model):
    """One line of a posting: ``amount`` minor units into (positive) or out of ``account``."""

    account: Account
    amount: int

    @model_validator(mode="after")
    def _not_zero(self) -> Self:
        if self.amount == 0:
            raise ValueError("an entry moves a non-zero amount")
        return self


class Posting(_Model):
    """One balanced ledger transaction. ``id`` is the operation id: posting it again is a
    no-op that returns the original."""

    id: str = Field(min_length=1, max_length=300)
    kind: PostingKind
    org_id: str | None
    task_id: str | None = None
    currency: Currency
    entries: tuple[Entry, ...]
    volume: int = Field(default=0, ge=0, description="gross amount, for fee tiers")
    created_at: datetime
    memo: JsonValue = None

    @model_validator(mode="after")
    def _balanced(self) -> Self:
        if not self.entries:
            raise ValueError("a posting has entries")
        if any(e.account.currency is not self.currency for e in self.entries):
            raise ValueError("every entry of a posting is in its currency")
        if sum(e.amount for e in self.entries) != 0:
            raise ValueError("a posting must balance: its entries sum to zero")
        return self


class EntryRecord(_Model):
    """An entry as stored: which posting, which account, how much, when."""

    seq: int
    posting_id: str
    kind: PostingKind
    account_id: str
    amount: int
    created_at: datetime


class HoldStatus(StrEnum):
    HELD = "held"
    RESOLVED = "resolved"


class Hold(_Model):
    """The money reserved for one paid task, and the terms it was reserved on."""

    task_id: str
    org_id: str
    reward: Money = Field(description="paid per accepted answer")
    slots: int = Field(ge=1, description="answers it may pay for (the task's answer cap)")
    fee: Money = Field(description="the most fee it may charge (on every slot paid)")
    fee_bps: int = Field(default=0, ge=0, description="the rate fixed when the money was held")
    fee_minimum: int = Field(default=0, ge=0)
    status: HoldStatus = HoldStatus.HELD
    version: int = 1

    @property
    def amount(self) -> Money:
        """What the hold reserves: reward × slots + fee."""
        return self.reward * self.slots + self.fee

    def fee_for(self, paid: int) -> int:
        """The fee on ``paid`` rewards, in minor units: the held rate (rounded half up), at
        least the minimum, at most what was held; nothing when nothing is paid."""
        if paid <= 0:
            return 0
        cut = percent_of(self.reward.minor * paid, self.fee_bps)
        return min(max(cut, self.fee_minimum), self.fee.minor)


class SettlementStatus(StrEnum):
    PENDING = "pending"
    FROZEN = "frozen"
    SETTLED = "settled"
    REVERSED = "reversed"


class Settlement(_Model):
    """A worker's earnings from one task, waiting out the hold period."""

    id: str
    org_id: str
    worker_id: str
    task_id: str
    amount: Money
    due_at: datetime
    status: SettlementStatus = SettlementStatus.PENDING
    version: int = 1


class PayoutStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class PayoutRecord(_Model):
    id: str
    org_id: str
    worker_id: str
    key: str
    amount: Money
    fee: Money
    rail: str
    status: PayoutStatus = PayoutStatus.PENDING
    reference: str | None = None
    failure: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @property
    def net(self) -> Money:
        return Money(currency=self.amount.currency, minor=self.amount.minor - self.fee.minor)


class Balance(_Model):
    """An organisation's money in one currency: what it may spend and what is held."""

    org_id: str
    available: Money
    held: Money


class Earnings(_Model):
    """A worker's money in one currency."""

    worker_id: str
    pending: Money
    available: Money
    total: Money = Field(description="everything ever earned, paid out or not")
