"""Billing periods: half-open UTC intervals ``[start, end)`` that every counter is keyed by.

A customer's periods are the calendar months (UTC) until a Stripe billing cycle is known for the
customer; then they are that cycle's anchored periods, for the customer's whole history.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


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


def period_for(at: datetime, cycle: BillingCycle | None = None) -> Period:
    """The period an event time belongs to: the calendar month, or the cycle's anchored period.

    Without a cycle (every tenant without a known Stripe subscription) this is the UTC calendar
    month, exactly as before cycles existed.
    """
    if cycle is None:
        return calendar_month(at)
    return cycle.period_containing(at)


def period_named(label: str, cycle: BillingCycle | None = None) -> Period:
    """The period a read names: ``YYYY-MM`` or ``YYYY-MM-DD``.

    ``YYYY-MM`` is the billing period that starts in that month (the month itself without a cycle;
    for a weekly or daily cycle the first one); ``YYYY-MM-DD`` is the period containing that day's
    first instant. Raises ``ValueError`` for any other text.
    """
    if len(label) == 10:
        try:
            day = datetime.strptime(label, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError("must be a month written YYYY-MM or a day YYYY-MM-DD") from None
        return period_for(day, cycle)
    month = month_from_label(label)
    if cycle is None:
        return month
    period = cycle.period_containing(month.start)
    if period.start < month.start:
        period = cycle.period_containing(period.end)
    return period if period.start < month.end else cycle.period_containing(month.start)


def periods_overlapping(
    since: datetime, until: datetime, cycle: BillingCycle | None = None
) -> list[Period]:
    """Every period (calendar months, or the cycle's) that overlaps ``[since, until)``, in order."""
    found: list[Period] = []
    if since >= until:
        return found
    period = period_for(since, cycle)
    while period.start < until:
        found.append(period)
        period = period_for(period.end, cycle)
    return found


def subscription_cycle(
    anchor: datetime, interval: str, count: int, current: Period | None
) -> BillingCycle | None:
    """The cycle that produces a Stripe subscription's periods, from its anchor and current period.

    The anchor's cycle when Stripe's current period is one of its periods, or the short first
    period of a subscription started before its anchor (``[start, anchor)``, which lies inside the
    anchored period ending at the anchor). Otherwise (the current period does not follow the
    anchor) the cycle through the current period, or None when Stripe's bounds fit no cycle.
    """
    if interval not in CYCLE_INTERVALS or count < 1:
        return None
    cycle = BillingCycle(anchor, interval, count)
    if current is None:
        return cycle
    containing = cycle.period_containing(current.start)
    if containing == current or (
        current.end == containing.end and containing.start < current.start
    ):
        return cycle
    through = BillingCycle(current.start, interval, count)
    return through if through.period_containing(current.start) == current else None


CYCLE_INTERVALS = ("day", "week", "month", "year")
_FIXED_INTERVALS = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
_APPROX_INTERVALS = {
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=28),
    "year": timedelta(days=365),
}


@dataclass(frozen=True, slots=True)
class BillingCycle:
    """A subscription's billing cycle: an anchor instant and an interval, as Stripe bills them.

    Monthly and yearly periods keep the anchor's day and time; a day the month lacks clamps to its
    last day (an anchor on the 31st bills on 28 or 29 February), as Stripe does.
    """

    anchor: datetime
    interval: str = "month"
    count: int = 1

    def __post_init__(self) -> None:
        if self.interval not in CYCLE_INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(CYCLE_INTERVALS)}")
        if self.count < 1:
            raise ValueError("interval count must be at least 1")
        if self.anchor.tzinfo is None:
            raise ValueError("the anchor must be an aware datetime")

    def boundary(self, steps: int) -> datetime:
        """The anchor moved by ``steps`` intervals (negative steps go back)."""
        anchor = self.anchor.astimezone(UTC)
        if self.interval in _FIXED_INTERVALS:
            return anchor + _FIXED_INTERVALS[self.interval] * self.count * steps
        months = self.count * steps * (12 if self.interval == "year" else 1)
        total = anchor.year * 12 + (anchor.month - 1) + months
        year, month0 = divmod(total, 12)
        day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
        return anchor.replace(year=year, month=month0 + 1, day=day)

    def same_periods(self, other: BillingCycle | None) -> bool:
        """Whether both cycles cut time into the same periods (their anchors may differ)."""
        if other is None:
            return False
        return (
            self.interval == other.interval
            and self.count == other.count
            and self.period_containing(other.anchor).start == other.anchor
            and other.period_containing(self.anchor).start == self.anchor
        )

    def period_containing(self, at: datetime) -> Period:
        """The anchored period ``[start, end)`` that contains ``at`` (before or after the anchor)."""
        at = at.astimezone(UTC)
        approx = _APPROX_INTERVALS[self.interval] * self.count
        steps = (at - self.anchor) // approx
        while self.boundary(steps) > at:
            steps -= 1
        while self.boundary(steps + 1) <= at:
            steps += 1
        return Period(self.boundary(steps), self.boundary(steps + 1))
