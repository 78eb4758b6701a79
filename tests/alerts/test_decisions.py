"""Pure alert decisions: thresholds, hysteresis, snooze, re-notify delay, backoff, signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from stripemeter.domain.alerts import (
    AlertState,
    AlertStatus,
    Policy,
    Transition,
    acknowledge,
    decide,
    effective_thresholds,
    retry_delay,
    sign,
    signature_header,
    snooze,
    verify_signature,
)
from stripemeter.domain.errors import Conflict

T0 = datetime(2026, 3, 1, tzinfo=UTC)
D = Decimal


def run(values: list[str], policy: Policy, *, step: timedelta = timedelta(minutes=1)) -> list[str]:
    """Feed values one per ``step``; the transitions, with (N) when they notify."""
    state = AlertState()
    seen = []
    for i, value in enumerate(values):
        decision = decide(state, D(value), policy, T0 + step * i)
        state = decision.state
        if decision.transition is not None:
            seen.append(decision.transition.value + (" (N)" if decision.notify else ""))
    return seen


class TestThresholds:
    def test_fires_once_and_resolves_once_over_repeated_values(self) -> None:
        """The same value evaluated again and again makes exactly one transition each way."""
        policy = Policy((D(100),))
        assert run(["50", "100", "120", "120", "120", "10", "10", "0"], policy) == [
            "triggered (N)",
            "resolved (N)",
        ]

    def test_several_thresholds_escalate_one_by_one(self) -> None:
        """80/90/100: each level notifies once on the way up; falling back lowers silently."""
        policy = Policy((D(80), D(90), D(100)), hysteresis=D(0))
        assert run(["79", "80", "85", "91", "91", "100", "150", "89", "50"], policy) == [
            "triggered (N)",
            "escalated (N)",
            "escalated (N)",
            "lowered",
            "resolved (N)",
        ]

    def test_jumping_past_every_threshold_fires_once_at_the_highest(self) -> None:
        """A value above all thresholds triggers once, at the top level."""
        decision = decide(AlertState(), D(500), Policy((D(80), D(90), D(100))), T0)
        assert decision.transition is Transition.TRIGGERED
        assert decision.state.level == 2

    def test_hysteresis_keeps_a_flapping_value_triggered(self) -> None:
        """A value oscillating around the threshold, within the hysteresis band, never re-fires."""
        policy = Policy((D(100),), hysteresis=D("0.05"))
        assert run(["100", "99", "101", "96", "100", "95.5", "94.9", "100"], policy) == [
            "triggered (N)",
            "resolved (N)",
            "triggered (N)",
        ]

    def test_percent_of_limit_thresholds_become_absolute(self) -> None:
        """80/90/100 % of a limit of 1000 are 800, 900 and 1000; without a limit there are none."""
        levels = effective_thresholds((D(80), D(90), D(100)), percent_of_limit=True, limit=D(1000))
        assert levels == (D(800), D(900), D(1000))
        assert effective_thresholds((D(80),), percent_of_limit=True, limit=None) is None


class TestNotificationTiming:
    def test_renotify_after_the_delay_only(self) -> None:
        """A still-triggered alert notifies again once per re-notify delay, not on every evaluation."""
        policy = Policy((D(10),), renotify_after=timedelta(minutes=5))
        assert run(["20"] * 12, policy) == ["triggered (N)", "renotified (N)", "renotified (N)"]

    def test_no_renotify_without_a_delay(self) -> None:
        """Without renotifyAfter a firing alert notifies once."""
        assert run(["20"] * 50, Policy((D(10),))) == ["triggered (N)"]

    def test_acknowledged_stops_renotify_until_escalation(self) -> None:
        """Acknowledging silences re-notification; a higher threshold triggers and notifies again."""
        policy = Policy((D(10), D(20)), renotify_after=timedelta(minutes=1))
        state = decide(AlertState(), D(15), policy, T0).state
        state = acknowledge(state).state
        assert state.status is AlertStatus.ACKNOWLEDGED
        for minute in range(1, 10):
            assert decide(state, D(15), policy, T0 + timedelta(minutes=minute)).transition is None
        escalated = decide(state, D(25), policy, T0 + timedelta(minutes=10))
        assert escalated.transition is Transition.ESCALATED
        assert escalated.notify
        assert escalated.state.status is AlertStatus.TRIGGERED

    def test_only_a_triggered_alert_can_be_acknowledged(self) -> None:
        """Acknowledging a resolved alert is a conflict; acknowledging twice changes nothing."""
        with pytest.raises(Conflict):
            acknowledge(AlertState(status=AlertStatus.RESOLVED))
        acked = AlertState(status=AlertStatus.ACKNOWLEDGED, level=0)
        assert acknowledge(acked).transition is None

    def test_snooze_holds_notifications_and_reminds_once_when_it_ends(self) -> None:
        """Triggered while snoozed: recorded, not sent; once the snooze ends, one reminder goes out."""
        policy = Policy((D(10),))
        state = snooze(AlertState(), T0 + timedelta(hours=1), T0).state
        fired = decide(state, D(20), policy, T0 + timedelta(minutes=5))
        assert fired.transition is Transition.TRIGGERED
        assert not fired.notify
        assert fired.state.notify_pending
        quiet = decide(fired.state, D(20), policy, T0 + timedelta(minutes=30))
        assert quiet.transition is None
        reminded = decide(fired.state, D(20), policy, T0 + timedelta(hours=2))
        assert reminded.transition is Transition.REMINDED
        assert reminded.notify
        again = decide(reminded.state, D(20), policy, T0 + timedelta(hours=3))
        assert again.transition is None

    def test_resolving_while_snoozed_sends_nothing(self) -> None:
        """An alert that fires and clears inside a snooze owes no notification afterwards."""
        policy = Policy((D(10),))
        state = snooze(AlertState(), T0 + timedelta(hours=1), T0).state
        state = decide(state, D(20), policy, T0 + timedelta(minutes=1)).state
        resolved = decide(state, D(0), policy, T0 + timedelta(minutes=2))
        assert resolved.transition is Transition.RESOLVED
        assert not resolved.notify
        assert decide(resolved.state, D(0), policy, T0 + timedelta(hours=2)).transition is None

    def test_snooze_must_end_in_the_future(self) -> None:
        """A snooze ending now or earlier is refused; ``None`` lifts an existing snooze."""
        from stripemeter.domain.errors import InvalidInput

        with pytest.raises(InvalidInput):
            snooze(AlertState(), T0, T0)
        snoozed = snooze(AlertState(), T0 + timedelta(hours=1), T0).state
        assert snooze(snoozed, None, T0).transition is Transition.UNSNOOZED
        assert snooze(AlertState(), None, T0).transition is None


class TestDeliveryPrimitives:
    def test_retry_delay_doubles_up_to_the_cap(self) -> None:
        """Backoff: base, 2 x base, 4 x base ... never above the cap; jitter adds at most a quarter."""
        delays = [retry_delay(n, base=5, cap=60).total_seconds() for n in range(1, 7)]
        assert delays == [5, 10, 20, 40, 60, 60]
        assert retry_delay(1, base=4, cap=60, jitter=0.99).total_seconds() < 5

    def test_signature_round_trip_and_tamper(self) -> None:
        """The header verifies with the secret; another body, secret or an old timestamp does not."""
        body = b'{"a":1}'
        header = signature_header("whsec_test_secret_1234", 1_700_000_000, body)
        assert header == f"t=1700000000,v1={sign('whsec_test_secret_1234', 1_700_000_000, body)}"
        ok = verify_signature("whsec_test_secret_1234", header, body, now=1_700_000_010)
        assert ok
        assert not verify_signature("whsec_test_secret_1234", header, b"{}", now=1_700_000_010)
        assert not verify_signature("other_secret_12345678", header, body, now=1_700_000_010)
        assert not verify_signature("whsec_test_secret_1234", header, body, now=1_700_001_000)
