"""The counter fold: exact, and independent of the order events arrive in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from stripemeter.domain.aggregation import EMPTY, Aggregation, Contribution, fold, fold_all
from stripemeter.domain.lateness import Lateness, judge
from stripemeter.domain.periods import Period, calendar_month, month_from_label

T0 = datetime(2025, 1, 1, tzinfo=UTC)

contributions = st.lists(
    st.builds(
        Contribution,
        quantity=st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False),
        at=st.integers(0, 5).map(lambda m: T0 + timedelta(minutes=m)),
        order_key=st.sampled_from(["a", "b", "c", "d"]),
        counts_as_event=st.booleans(),
    ),
    max_size=12,
)


@given(contributions, st.randoms())
def test_fold_is_order_independent(items: list[Contribution], rnd: random.Random) -> None:
    """Folding the same contributions in any order gives the same counter."""
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert fold_all(EMPTY, items) == fold_all(EMPTY, shuffled)


@given(contributions, contributions)
def test_folding_many_at_once_equals_folding_one_by_one(
    before: list[Contribution], items: list[Contribution]
) -> None:
    """Folding a batch in one pass (ingest, replay) equals folding it an item at a time, from any
    state: counters built per group and per event agree."""
    state = fold_all(EMPTY, before)
    one_by_one = state
    for item in items:
        one_by_one = fold(one_by_one, item)
    assert fold_all(state, items) == one_by_one


def test_last_is_the_value_at_the_greatest_time_with_key_tie_break() -> None:
    """last follows event time, not arrival, and equal times are settled by the greater key."""
    late_small = Contribution(Decimal(1), T0 + timedelta(hours=2), "k2")
    early_big = Contribution(Decimal(9), T0, "k1")
    tie = Contribution(Decimal(4), T0 + timedelta(hours=2), "k3")
    state = fold_all(EMPTY, [late_small, early_big])
    assert state.value(Aggregation.LAST) == 1
    assert state.value(Aggregation.MAX) == 9
    assert fold(state, tie).value(Aggregation.LAST) == 4


def test_pure_adjustments_change_only_the_sum() -> None:
    """An adjustment without an event adds to sum and leaves count, max, last and watermark."""
    state = fold(EMPTY, Contribution(Decimal(5), T0, "e"))
    adjusted = fold(
        state, Contribution(Decimal(-2), T0 + timedelta(days=3), "adj", counts_as_event=False)
    )
    assert adjusted.sum == 3
    assert (adjusted.count, adjusted.max, adjusted.last, adjusted.watermark) == (
        1,
        Decimal(5),
        Decimal(5),
        T0,
    )


def test_an_empty_counter_bills_zero_under_every_aggregation() -> None:
    """Nothing counted is zero, not missing."""
    assert {EMPTY.value(a) for a in Aggregation} == {Decimal(0)}


def test_lateness_verdicts() -> None:
    """On time at or after the watermark, late within the window, held beyond it."""
    window = timedelta(hours=48)
    assert judge(T0, None, window) is Lateness.ON_TIME
    assert judge(T0, T0, window) is Lateness.ON_TIME
    assert judge(T0 - window, T0, window) is Lateness.LATE
    assert judge(T0 - window - timedelta(microseconds=1), T0, window) is Lateness.BEYOND_WINDOW


def test_periods_are_half_open_calendar_months() -> None:
    """An instant exactly at a month's end belongs to the next month."""
    january = calendar_month(datetime(2025, 1, 31, 23, 59, tzinfo=UTC))
    assert january == Period(T0, datetime(2025, 2, 1, tzinfo=UTC))
    assert datetime(2025, 2, 1, tzinfo=UTC) not in january
    assert calendar_month(datetime(2025, 12, 5, tzinfo=UTC)).end == datetime(2026, 1, 1, tzinfo=UTC)
    assert month_from_label("2025-01") == january
    assert january.label == "2025-01"
