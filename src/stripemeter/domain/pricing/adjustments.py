"""What StripeMeter adds on top of Stripe's prices: line limits, commitments, credits, tax.

Order of application, for one invoice (every amount an integer count of minor units):

1. Each line is priced (``price_line``) and rounded once to the minor unit.
2. The line's ``minimum`` raises it, then its ``maximum`` lowers it; a minimum applies even at
   zero usage. ``None`` means no limit; 0 is a real limit.
3. ``subtotal`` is the sum of the limited lines.
4. Commitments (prepaid amounts) whose term overlaps the period are drawn down, earliest term end
   first, each by ``min(remaining prepaid, amount still due)``.
5. Credits still valid at the period end (no expiry, or ``expires_at >= period end``) are drawn
   down, soonest expiry first, each by ``min(credit, amount still due)``; the unused part is
   reported, never carried over here.
6. ``taxable = subtotal - commitments - credits`` (never below zero, by construction).
7. ``tax = taxable * rate / 100`` rounded once, halves away from zero (an exclusive rate).
8. ``total = taxable + tax``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from stripemeter.domain.periods import Period
from stripemeter.domain.pricing.currencies import round_minor_units
from stripemeter.domain.pricing.errors import PricingError
from stripemeter.domain.times import utc


def _non_negative(value: int, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PricingError(f"{param} must be a non-negative integer of minor units", param=param)


@dataclass(frozen=True, slots=True)
class ChargeLimits:
    """A line's minimum and maximum charge in minor units; None means no limit."""

    minimum: int | None = None
    maximum: int | None = None

    def __post_init__(self) -> None:
        if self.minimum is not None:
            _non_negative(self.minimum, "minimum")
        if self.maximum is not None:
            _non_negative(self.maximum, "maximum")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise PricingError(
                f"minimum {self.minimum} is above maximum {self.maximum}", param="minimum"
            )

    def apply(self, amount: int) -> int:
        """The amount raised to the minimum, then lowered to the maximum."""
        if self.minimum is not None:
            amount = max(amount, self.minimum)
        if self.maximum is not None:
            amount = min(amount, self.maximum)
        return amount


@dataclass(frozen=True, slots=True)
class Commitment:
    """A prepaid amount for a term, of which ``applied`` was already drawn by earlier invoices."""

    amount: int
    term: Period
    applied: int = 0

    def __post_init__(self) -> None:
        _non_negative(self.amount, "amount")
        _non_negative(self.applied, "applied")

    @property
    def remaining(self) -> int:
        """What is left to draw; an over-drawn commitment has nothing left, never a negative."""
        return max(self.amount - self.applied, 0)

    def covers(self, period: Period) -> bool:
        """True when the term overlaps the billing period (both half-open)."""
        return self.term.start < period.end and period.start < self.term.end


@dataclass(frozen=True, slots=True)
class Credit:
    """A credit in minor units, usable for periods that end at or before ``expires_at``."""

    amount: int
    reason: str = ""
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        _non_negative(self.amount, "amount")
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", utc(self.expires_at))

    def valid_for(self, period: Period) -> bool:
        """True when the credit has not expired by the end of the period."""
        return self.expires_at is None or self.expires_at >= period.end


@dataclass(frozen=True, slots=True)
class Drawdown:
    """How much of one commitment or credit an invoice used, and what was left unused."""

    source: Commitment | Credit
    applied: int
    unused: int


def draw_commitments(
    commitments: Iterable[Commitment], period: Period, due: int
) -> tuple[Drawdown, ...]:
    """Draw prepaid commitments covering ``period`` against ``due``, earliest term end first."""
    draws = []
    for commitment in sorted(
        (c for c in commitments if c.covers(period)), key=lambda c: c.term.end
    ):
        used = min(commitment.remaining, due)
        due -= used
        draws.append(Drawdown(commitment, used, commitment.remaining - used))
    return tuple(draws)


def draw_credits(credits: Iterable[Credit], period: Period, due: int) -> tuple[Drawdown, ...]:
    """Draw credits valid for ``period`` against ``due``, soonest expiry first."""
    draws = []
    valid = [c for c in credits if c.valid_for(period)]
    # Soonest expiry first, so that credits about to lapse are the ones used; stable otherwise.
    valid.sort(key=lambda c: (c.expires_at is None, c.expires_at or period.end))
    for credit in valid:
        used = min(credit.amount, due)
        due -= used
        draws.append(Drawdown(credit, used, credit.amount - used))
    return tuple(draws)


def exclusive_tax(taxable: int, rate_percent: Decimal) -> int:
    """Tax on top of ``taxable`` at ``rate_percent`` (``Decimal("8.25")`` is 8.25 %), rounded."""
    if not rate_percent.is_finite() or rate_percent < 0:
        raise PricingError(f"tax rate must be a non-negative percentage, got {rate_percent}")
    return round_minor_units(Decimal(taxable) * rate_percent / 100)
