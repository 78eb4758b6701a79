"""Billing periods: half-open UTC intervals ``[start, end)`` that every counter is keyed by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A half-open UTC interval; an instant equal to ``end`` belongs to the next period."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def label(self) -> str:
        """``2025-01`` for a calendar month, else the ISO start date."""
        if self == calendar_month(self.start):
            return self.start.strftime("%Y-%m")
        return self.start.date().isoformat()


def calendar_month(at: datetime) -> Period:
    """The UTC calendar month containing ``at``."""
    at = at.astimezone(UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end)


def month_from_label(label: str) -> Period:
    """Parse ``YYYY-MM`` into that calendar month."""
    try:
        start = datetime.strptime(label, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError("must be a month written YYYY-MM") from None
    return calendar_month(start)


def period_for(at: datetime) -> Period:
    """The period an event time belongs to.

    Calendar months for now; billing-cycle anchors from Stripe subscriptions arrive with the Stripe
    sync, behind this same function.
    """
    return calendar_month(at)
