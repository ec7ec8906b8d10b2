"""Escrow for paid human work: a double-entry ledger with two-phase holds.

Money is integer minor units; every posting balances per currency and is identified by its
operation id, so replaying it changes nothing. See ``_ledger`` for a task's life in
postings and ``_fees`` for the one rounding rule.
"""

from ._accounts import Account, AccountKind
from ._escrow import LedgerEscrow
from ._fees import FeeSchedule, FeeTier, percent_of
from ._ledger import EntryPage, Ledger
from ._model import (
    Balance,
    Earnings,
    Entry,
    EntryRecord,
    Hold,
    HoldStatus,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    Settlement,
    SettlementStatus,
)
from ._rails import FundingRail, PayoutRail, RailResult, SandboxFundingRail, SandboxPayoutRail

__all__ = [
    "Account",
    "AccountKind",
    "Balance",
    "Earnings",
    "Entry",
    "EntryPage",
    "EntryRecord",
    "FeeSchedule",
    "FeeTier",
    "FundingRail",
    "Hold",
    "HoldStatus",
    "Ledger",
    "LedgerEscrow",
    "PayoutRail",
    "PayoutRecord",
    "PayoutStatus",
    "Posting",
    "PostingKind",
    "RailResult",
    "SandboxFundingRail",
    "SandboxPayoutRail",
    "Settlement",
    "SettlementStatus",
    "percent_of",
]
