"""Billing periods: calendar months, anchored cycles, what a label names, Stripe's subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stripemeter.domain.periods import (
    BillingCycle,
    Period,
    period_for,
    period_named,
    periods_overlapping,
    subscription_cycle,
)

D = datetime


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_an_anchor_on_the_15th_cuts_between_the_14th_and_the_16th() -> None:
    """The 15th at the anchor's time starts a period; the instant before belongs to the previous."""
    cycle = BillingCycle(utc(2025, 10, 15))
    assert period_for(utc(2025, 11, 14, 23, 59, 59), cycle) == Period(
        utc(2025, 10, 15), utc(2025, 11, 15)
    )
    assert period_for(utc(2025, 11, 15), cycle) == Period(utc(2025, 11, 15), utc(2025, 12, 15))
    assert period_for(utc(2024, 1, 20), cycle) == Period(utc(2024, 1, 15), utc(2024, 2, 15))


def test_an_anchor_on_the_31st_clamps_in_february_and_comes_back() -> None:
    """Jan 31 → Feb 28 (29 in a leap year) → Mar 31: each month's last day at most."""
    cycle = BillingCycle(utc(2025, 1, 31, 10))
    assert period_for(utc(2025, 2, 28, 9), cycle) == Period(
        utc(2025, 1, 31, 10), utc(2025, 2, 28, 10)
    )
    assert period_for(utc(2025, 3, 1), cycle) == Period(utc(2025, 2, 28, 10), utc(2025, 3, 31, 10))
    assert period_for(utc(2024, 2, 29, 11), cycle) == Period(
        utc(2024, 2, 29, 10), utc(2024, 3, 31, 10)
    )


def test_labels_name_the_period_starting_in_the_month_or_containing_the_day() -> None:
    """YYYY-MM: the period starting in it (the month itself without a cycle); YYYY-MM-DD: containing."""
    cycle = BillingCycle(utc(2025, 10, 15))
    assert period_named("2025-11") == Period(utc(2025, 11, 1), utc(2025, 12, 1))
    assert period_named("2025-11", cycle) == Period(utc(2025, 11, 15), utc(2025, 12, 15))
    assert period_named("2025-11-14", cycle) == Period(utc(2025, 10, 15), utc(2025, 11, 15))
    assert period_named("2025-11-14") == Period(utc(2025, 11, 1), utc(2025, 12, 1))
    weekly = BillingCycle(utc(2025, 1, 1, 1), "week")
    assert period_named("2025-02", weekly).start == utc(2025, 2, 5, 1)
    yearly = BillingCycle(utc(2024, 6, 1), "year")
    assert period_named("2025-03", yearly) == Period(utc(2024, 6, 1), utc(2025, 6, 1))


def test_periods_overlapping_a_range_are_whole_and_in_order() -> None:
    """Every period meeting [since, until), each whole, none missing."""
    cycle = BillingCycle(utc(2025, 10, 15))
    assert periods_overlapping(utc(2025, 11, 14), utc(2025, 11, 16), cycle) == [
        Period(utc(2025, 10, 15), utc(2025, 11, 15)),
        Period(utc(2025, 11, 15), utc(2025, 12, 15)),
    ]
    assert periods_overlapping(utc(2025, 11, 14), utc(2025, 11, 14)) == []


def test_same_periods_ignores_which_boundary_is_the_anchor() -> None:
    """Anchors a month apart cut the same periods; the 31st and the 28th do not."""
    assert BillingCycle(utc(2025, 10, 15)).same_periods(BillingCycle(utc(2026, 3, 15)))
    assert not BillingCycle(utc(2025, 1, 31)).same_periods(BillingCycle(utc(2025, 2, 28)))
    assert not BillingCycle(utc(2025, 1, 1)).same_periods(BillingCycle(utc(2025, 1, 1), "week"))
    assert not BillingCycle(utc(2025, 1, 1)).same_periods(None)


def test_a_subscription_cycle_follows_stripe_s_current_period() -> None:
    """The anchor's cycle, also through a short first period; else the cycle through Stripe's."""
    anchor = utc(2026, 8, 15)
    assert subscription_cycle(anchor, "month", 1, Period(anchor, utc(2026, 9, 15))) == BillingCycle(
        anchor
    )
    short = Period(utc(2026, 8, 10), anchor)  # started on the 10th, anchored on the 15th
    assert subscription_cycle(anchor, "month", 1, short) == BillingCycle(anchor)
    off = Period(utc(2026, 9, 3), utc(2026, 10, 3))  # Stripe's period does not follow the anchor
    assert subscription_cycle(anchor, "month", 1, off) == BillingCycle(utc(2026, 9, 3))
    assert subscription_cycle(anchor, "month", 1, Period(utc(2026, 9, 3), utc(2026, 9, 9))) is None
    assert subscription_cycle(anchor, "fortnight", 1, None) is None


@given(
    anchor=st.datetimes(min_value=D(2000, 1, 1), max_value=D(2040, 1, 1), timezones=st.just(UTC)),
    at=st.datetimes(min_value=D(1990, 1, 1), max_value=D(2050, 1, 1), timezones=st.just(UTC)),
    interval=st.sampled_from(["day", "week", "month", "year"]),
    count=st.integers(1, 3),
)
def test_anchored_periods_partition_time(
    anchor: datetime, at: datetime, interval: str, count: int
) -> None:
    """The period containing an instant contains it, and its neighbours touch it exactly."""
    cycle = BillingCycle(anchor, interval, count)
    period = period_for(at, cycle)
    assert at in period
    assert period_for(period.end, cycle).start == period.end
    assert period_for(period.start - timedelta(microseconds=1), cycle).end == period.start
