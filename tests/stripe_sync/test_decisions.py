"""The pure decisions: push plans, timestamps, retries, the breaker, anchored periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from stripemeter.domain.periods import BillingCycle, Period, calendar_month, period_for
from stripemeter.domain.pushes import (
    LAST_RESERVE,
    LogState,
    Pending,
    PlanKind,
    RowKey,
    StaleOutcome,
    ValueMode,
    plan_push,
    push_identifier,
    resolve_stale,
    stamp_floor_after,
    stamp_for,
)
from stripemeter.stripe.breaker import BreakerState, CircuitBreaker
from stripemeter.stripe.errors import (
    DuplicateIdentifier,
    InvalidRequest,
    NetworkError,
    RateLimited,
    ServerError,
)
from stripemeter.stripe.retry import Action, RetryPolicy

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOV = calendar_month(NOW)
KEY = RowKey("t", "m", "live", "c", NOV)
EMPTY = LogState(Decimal(0), 0, None, None)


def test_plan_sends_the_delta_with_a_deterministic_identifier() -> None:
    """A new total becomes one SEND of the difference; planning twice gives the same identifier."""
    state = LogState(Decimal(10), 3, None, None)
    plan = plan_push(KEY, state, Decimal(4), NOW, mode=ValueMode.DELTA, monotonic=False)
    assert plan.kind is PlanKind.SEND
    assert plan.value == Decimal(-6)
    assert plan.stamp == NOW
    again = plan_push(KEY, state, Decimal(4), NOW, mode=ValueMode.DELTA, monotonic=False)
    assert again.identifier == plan.identifier == push_identifier(KEY, Decimal(10), Decimal(4), 3)
    assert len(plan.identifier or "") <= 100


def test_a_pending_push_is_resent_before_any_new_delta() -> None:
    """With an intent pending, the plan re-sends it unchanged whatever the local total is now."""
    pending = Pending(Decimal(0), Decimal(5), NOW, NOW, "smp_x")
    state = LogState(Decimal(0), 0, None, pending)
    plan = plan_push(
        KEY, state, Decimal(99), NOW + timedelta(hours=1), mode=ValueMode.DELTA, monotonic=False
    )
    got: tuple[object, ...] = (plan.kind, plan.identifier, plan.value, plan.stamp)
    assert got == (
        PlanKind.RESEND,
        "smp_x",
        5,
        NOW,
    )
    stale = plan_push(
        KEY, state, Decimal(99), NOW + timedelta(hours=25), mode=ValueMode.DELTA, monotonic=False
    )
    assert stale.kind is PlanKind.VERIFY


def test_repeated_totals_get_distinct_identifiers() -> None:
    """0→5, 5→0, 0→5: the second 0→5 is a new push, not a duplicate of the first."""
    assert push_identifier(KEY, Decimal(0), Decimal(5), 0) != push_identifier(
        KEY, Decimal(0), Decimal(5), 2
    )


def test_nothing_to_do_and_absolute_values() -> None:
    """Equal totals plan nothing; last/max send the value; legacy rounds half-up, never negative."""
    assert (
        plan_push(KEY, EMPTY, Decimal(0), NOW, mode=ValueMode.DELTA, monotonic=False).kind
        is PlanKind.NOTHING
    )
    last = plan_push(
        KEY,
        LogState(Decimal(9), 1, None, None),
        Decimal(4),
        NOW,
        mode=ValueMode.ABSOLUTE,
        monotonic=True,
    )
    assert last.value == 4
    legacy = plan_push(
        KEY, EMPTY, Decimal("2.5"), NOW, mode=ValueMode.ABSOLUTE, monotonic=False, whole=True
    )
    assert legacy.value == 3
    negative = plan_push(
        KEY, EMPTY, Decimal(-2), NOW, mode=ValueMode.ABSOLUTE, monotonic=False, whole=True
    )
    assert negative.kind is PlanKind.NOTHING


def test_stamps_stay_inside_the_period_and_stripe_window() -> None:
    """Open periods stamp now; ended ones their last second; too old ones cannot be sent."""
    assert stamp_for(NOV, NOW, after=None, monotonic=False) == NOW
    oct_ = calendar_month(datetime(2026, 10, 5, tzinfo=UTC))
    assert stamp_for(oct_, NOW, after=None, monotonic=False) == oct_.end - timedelta(seconds=1)
    old = calendar_month(datetime(2026, 8, 5, tzinfo=UTC))
    assert stamp_for(old, NOW, after=None, monotonic=False) is None
    parked = plan_push(
        RowKey("t", "m", "live", "c", old),
        EMPTY,
        Decimal(1),
        NOW,
        mode=ValueMode.DELTA,
        monotonic=False,
    )
    assert parked.kind is PlanKind.PARK
    assert "outside_stripe_window" in (parked.reason or "")


def test_last_meter_stamps_strictly_increase() -> None:
    """Monotonic stamps move one second past the previous push, even after the period ended."""
    first = stamp_for(NOV, NOW, after=NOW, monotonic=True)
    assert first == NOW + timedelta(seconds=1)
    ended = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    start = stamp_for(NOV, ended, after=None, monotonic=True)
    assert start == NOV.end - LAST_RESERVE
    assert stamp_for(NOV, ended, after=start, monotonic=True) == (start or NOW) + timedelta(
        seconds=1
    )


def test_stale_pending_pushes_are_resolved_from_stripe_totals() -> None:
    """Stripe showing `to` means delivered, `from` means not; anything else is left to a person."""
    assert (
        resolve_stale(Decimal(1), Decimal(4), Decimal(4), mode=ValueMode.DELTA)
        is StaleOutcome.DELIVERED
    )
    assert (
        resolve_stale(Decimal(1), Decimal(4), Decimal(1), mode=ValueMode.DELTA)
        is StaleOutcome.NOT_DELIVERED
    )
    assert (
        resolve_stale(Decimal(1), Decimal(4), Decimal(7), mode=ValueMode.DELTA)
        is StaleOutcome.UNKNOWN
    )


@pytest.mark.parametrize(
    ("error", "attempt", "action"),
    [
        (DuplicateIdentifier("dup"), 1, Action.DELIVERED),
        (RateLimited("429"), 1, Action.RETRY),
        (ServerError("500"), 3, Action.RESCHEDULE),
        (NetworkError("reset"), 2, Action.RETRY),
        (InvalidRequest("bad"), 1, Action.PARK),
        (InvalidRequest("lock", should_retry=True), 1, Action.RETRY),
        (ServerError("no", should_retry=False), 1, Action.PARK),
        (RateLimited("slow down", should_retry=False), 1, Action.RESCHEDULE),
    ],
)
def test_retry_policy(error: Exception, attempt: int, action: Action) -> None:
    """Retries follow the error class and Stripe-Should-Retry."""
    decision = RetryPolicy().decide(error, attempt, 0.5)  # type: ignore[arg-type]
    assert decision.action is action


def test_backoff_grows_and_honours_retry_after() -> None:
    """Waits double per attempt, with jitter, and are never shorter than Retry-After."""
    policy = RetryPolicy(base_delay=1, max_delay=100, attempts=10)
    delays = [policy.decide(ServerError("x"), n, 0.999).delay for n in (1, 2, 3)]
    assert delays[0] < delays[1] < delays[2]
    assert policy.decide(RateLimited("x", retry_after=7), 1, 0.0).delay == 7


def test_stamp_floor_after_the_latest_event_stays_inside_what_stripe_accepts() -> None:
    """The floor puts the next push at the minute after Stripe's latest event, within limits."""
    period = NOV
    end = period.end
    after_period = end + timedelta(minutes=30)
    minute = end - timedelta(minutes=8)
    floor = stamp_floor_after(minute + timedelta(seconds=17), period, after_period)
    assert floor == minute + timedelta(seconds=59)
    assert stamp_for(period, after_period, after=floor, monotonic=True) == minute + timedelta(
        minutes=1
    )
    last_minute = stamp_floor_after(end - timedelta(minutes=1), period, after_period)
    assert stamp_for(period, after_period, after=last_minute, monotonic=True) == end - timedelta(
        seconds=1
    )
    assert stamp_floor_after(None, period, after_period) == last_minute
    used_up = LogState(Decimal(5), 1, end - timedelta(seconds=1), None)
    parked = plan_push(
        RowKey("t", "m", "live", "c", period),
        used_up,
        Decimal(6),
        after_period,
        mode=ValueMode.ABSOLUTE,
        monotonic=True,
    )
    assert parked.kind is PlanKind.PARK
    assert (parked.reason or "").startswith("no_later_timestamp")
    # Mid-period an event up to 5 minutes ahead may exist; we can stamp at most 4 ahead.
    now = datetime(2026, 11, 10, 12, 0, 0, 500, tzinfo=UTC)
    ahead = stamp_floor_after(datetime(2026, 11, 10, 12, 5, tzinfo=UTC), period, now)
    assert stamp_for(period, now, after=ahead, monotonic=True) == now.replace(
        microsecond=0
    ) + timedelta(minutes=4)


def test_breaker_opens_probes_and_closes() -> None:
    """Open after the threshold, one probe after the timeout, closed again on success."""
    breaker = CircuitBreaker(threshold=2, reset_timeout=10)
    breaker.record_failure(0)
    assert breaker.allow(1)
    breaker.record_failure(1)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(5)
    assert breaker.allow(11)
    assert not breaker.allow(11)
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED  # type: ignore[comparison-overlap]
    assert breaker.allow(12)


def test_breaker_lets_another_probe_through_when_one_never_reports() -> None:
    """A probe whose caller died without an outcome does not keep the breaker shut forever."""
    breaker = CircuitBreaker(threshold=1, reset_timeout=10)
    breaker.record_failure(0)
    assert breaker.allow(10)  # the probe; its caller crashes and never reports
    assert not breaker.allow(15)
    assert breaker.allow(20)
    breaker.record_success()
    assert breaker.allow(21)
    breaker.record_failure(22)
    assert breaker.allow(32)  # a probe, then not made (another worker held the call slot)
    breaker.cancel_probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow(32)


def test_billing_cycles_anchor_periods() -> None:
    """Anchored periods clamp to month ends; without a cycle, calendar months are unchanged."""
    cycle = BillingCycle(datetime(2026, 1, 31, 10, tzinfo=UTC))
    feb = period_for(datetime(2026, 2, 15, tzinfo=UTC), cycle)
    assert feb == Period(
        datetime(2026, 1, 31, 10, tzinfo=UTC), datetime(2026, 2, 28, 10, tzinfo=UTC)
    )
    assert period_for(datetime(2026, 2, 28, 10, tzinfo=UTC), cycle).start == feb.end
    assert period_for(NOW) == NOV
    weekly = BillingCycle(datetime(2026, 11, 2, tzinfo=UTC), "week", 2)
    assert period_for(NOW, weekly) == Period(
        datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    )
