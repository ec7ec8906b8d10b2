"""Where money enters and leaves: the funding and payout rail protocols, and sandbox rails.

A real rail (Lightning, Strike, USDC, a bank) implements the same protocol. ``send`` must be
idempotent by the payout's id: the ledger may call it again for a payout whose outcome it
never learned (a crash between the call and the answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..money import Money
from ._model import PayoutRecord

__all__ = ["FundingRail", "PayoutRail", "RailResult", "SandboxFundingRail", "SandboxPayoutRail"]


@dataclass(frozen=True, slots=True)
class RailResult:
    ok: bool
    reference: str | None = None
    failure: str | None = None


class PayoutRail(Protocol):
    name: str

    def fee(self, amount: Money) -> Money:
        """What the rail charges to move ``amount`` (deducted from it)."""
        ...

    async def send(self, payout: PayoutRecord) -> RailResult:
        """Pay ``payout.net`` to the worker. Idempotent by ``payout.id``."""
        ...


class FundingRail(Protocol):
    name: str

    async def confirm(self, org_id: str, amount: Money, reference: str) -> bool:
        """Whether ``amount`` really arrived for ``org_id`` under ``reference``."""
        ...


class SandboxPayoutRail:
    """Pays instantly and remembers what it paid (and can be told to refuse)."""

    name = "sandbox"

    def __init__(self, *, fee_minor: int = 0, fail_with: str | None = None) -> None:
        self._fee = fee_minor
        self.fail_with = fail_with
        self.sent: dict[str, Money] = {}

    def fee(self, amount: Money) -> Money:
        return Money(currency=amount.currency, minor=min(self._fee, amount.minor))

    async def send(self, payout: PayoutRecord) -> RailResult:
        if self.fail_with is not None:
            return RailResult(ok=False, failure=self.fail_with)
        self.sent.setdefault(payout.id, payout.net)
        return RailResult(ok=True, reference=f"sandbox-{payout.id}")


class SandboxFundingRail:
    """Confirms every deposit: for sandbox credit and tests."""

    name = "sandbox"

    async def confirm(self, org_id: str, amount: Money, reference: str) -> bool:
        return True
