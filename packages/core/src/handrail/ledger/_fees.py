"""Fees: a percentage tiered by the organisation's trailing spend, with a minimum per task.

**Rounding rule** (the only one in the ledger): a percentage of an amount is rounded half
up to a whole minor unit, in integers: ``(amount * bps + 5_000) // 10_000``. So 10% of
$0.05 is $0.01 (0.5 cent rounds up) and 10% of $0.04 is $0.00 (0.4 cent rounds down),
before the minimum applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ..money import Currency, Money

__all__ = ["FeeSchedule", "FeeTier", "percent_of"]


def percent_of(amount: int, bps: int) -> int:
    """``bps`` basis points (1/100 of a percent) of ``amount``, rounded half up."""
    if amount < 0 or bps < 0:
        raise ValueError("amounts and rates are non-negative")
    return (amount * bps + 5_000) // 10_000


@dataclass(frozen=True, slots=True)
class FeeTier:
    """``bps`` applies while the trailing spend is below ``below`` (None: no upper bound)."""

    below: int | None
    bps: int


def _default_tiers() -> dict[Currency, tuple[FeeTier, ...]]:
    # HumanOps' published schedule: 10% under $5k of monthly spend, 8% to $25k, 5% above.
    return {
        Currency.USD: (FeeTier(500_000, 1_000), FeeTier(2_500_000, 800), FeeTier(None, 500)),
        Currency.SATS: (
            FeeTier(10_000_000, 1_000),
            FeeTier(50_000_000, 800),
            FeeTier(None, 500),
        ),
    }


@dataclass(frozen=True)
class FeeSchedule:
    """What the platform charges per paid task.

    ``tiers`` per currency, ordered by ``below``; ``minimum`` per currency in minor units
    (default $0.10 and 100 sats); ``window`` is how far back spend counts (30 days).
    """

    tiers: Mapping[Currency, Sequence[FeeTier]] = field(default_factory=_default_tiers)
    minimum: Mapping[Currency, int] = field(
        default_factory=lambda: {Currency.USD: 10, Currency.SATS: 100}
    )
    window: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        for currency, tiers in self.tiers.items():
            bounds = [t.below for t in tiers]
            if not tiers or bounds[-1] is not None or bounds[:-1] != sorted(bounds[:-1]):  # type: ignore[type-var]
                raise ValueError(f"{currency} tiers must ascend and end with an open tier")

    def bps(self, currency: Currency, trailing_spend: int) -> int:
        for tier in self.tiers[currency]:
            if tier.below is None or trailing_spend < tier.below:
                return tier.bps
        raise AssertionError("the last tier is open")  # pragma: no cover

    def fee(self, base: Money, trailing_spend: int) -> Money:
        """The fee on ``base`` (reward × redundancy) for an org that spent
        ``trailing_spend`` minor units within the window: never below the minimum."""
        cut = percent_of(base.minor, self.bps(base.currency, trailing_spend))
        return Money(currency=base.currency, minor=max(cut, self.minimum.get(base.currency, 0)))
