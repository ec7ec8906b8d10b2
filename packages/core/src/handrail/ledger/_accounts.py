"""Ledger accounts: who an account belongs to, what it is for, and whether it may go
below zero.

An account holds one currency. Its balance is the sum of its entries; a positive balance
is money held for the account's owner. Only ``external:funding`` (the outside world that
money comes from) and a sandbox's ``sandbox_mint`` run negative, so every account summed
per currency is zero.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from ..money import Currency

__all__ = ["Account", "AccountKind"]


class AccountKind(StrEnum):
    ORG_AVAILABLE = "org_available"
    """What an organisation may spend."""
    ESCROW = "escrow"
    """Held for one paid task: reward × redundancy + fee."""
    DISPUTE = "dispute"
    """A disputed task's released money, frozen until the dispute is resolved."""
    WORKER_PENDING = "worker_pending"
    """A worker's earnings in the settlement hold (default 7 days)."""
    WORKER_AVAILABLE = "worker_available"
    """A worker's settled earnings: payable."""
    PAYOUT = "payout"
    """One payout in flight to a rail."""
    PLATFORM_FEES = "platform_fees"
    RAIL_FEES = "rail_fees"
    EXTERNAL_FUNDING = "external_funding"
    """Where deposits come from: the one account that runs negative."""
    EXTERNAL_PAYOUTS = "external_payouts"
    """Where payouts go."""
    SANDBOX_MINT = "sandbox_mint"
    """Where a sandbox's play money comes from (per sandbox): it runs negative, as
    ``external_funding`` does, but no live account ever meets it."""


def _part(value: str) -> str:
    return quote(value, safe="")  # ':' inside an id cannot blur two accounts together


class Account(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AccountKind
    currency: Currency
    org_id: str | None = None
    owner: str | None = None  # task, worker or payout id

    @property
    def id(self) -> str:
        parts = [self.kind.value, self.currency.value]
        parts += [_part(p) for p in (self.org_id, self.owner) if p is not None]
        return ":".join(parts)

    @property
    def floored(self) -> bool:
        """Whether the balance must never go below zero."""
        return self.kind not in (AccountKind.EXTERNAL_FUNDING, AccountKind.SANDBOX_MINT)

    @classmethod
    def org(cls, org_id: str, currency: Currency) -> Account:
        return cls(kind=AccountKind.ORG_AVAILABLE, currency=currency, org_id=org_id)

    @classmethod
    def escrow(cls, org_id: str, task_id: str, currency: Currency) -> Account:
        return cls(kind=AccountKind.ESCROW, currency=currency, org_id=org_id, owner=task_id)

    @classmethod
    def dispute(cls, org_id: str, task_id: str, currency: Currency) -> Account:
        return cls(kind=AccountKind.DISPUTE, currency=currency, org_id=org_id, owner=task_id)

    @classmethod
    def pending(cls, org_id: str, worker_id: str, currency: Currency) -> Account:
        return cls(
            kind=AccountKind.WORKER_PENDING, currency=currency, org_id=org_id, owner=worker_id
        )

    @classmethod
    def available(cls, org_id: str, worker_id: str, currency: Currency) -> Account:
        return cls(
            kind=AccountKind.WORKER_AVAILABLE, currency=currency, org_id=org_id, owner=worker_id
        )

    @classmethod
    def payout(cls, org_id: str, payout_id: str, currency: Currency) -> Account:
        return cls(kind=AccountKind.PAYOUT, currency=currency, org_id=org_id, owner=payout_id)

    @classmethod
    def fees(cls, currency: Currency) -> Account:
        return cls(kind=AccountKind.PLATFORM_FEES, currency=currency)

    @classmethod
    def rail_fees(cls, currency: Currency) -> Account:
        return cls(kind=AccountKind.RAIL_FEES, currency=currency)

    @classmethod
    def funding(cls, currency: Currency) -> Account:
        return cls(kind=AccountKind.EXTERNAL_FUNDING, currency=currency)

    @classmethod
    def mint(cls, org_id: str, currency: Currency) -> Account:
        """A sandbox's own source of money (``org_id`` is the sandbox's tenant id)."""
        return cls(kind=AccountKind.SANDBOX_MINT, currency=currency, org_id=org_id)

    @classmethod
    def payouts(cls, currency: Currency) -> Account:
        return cls(kind=AccountKind.EXTERNAL_PAYOUTS, currency=currency)
