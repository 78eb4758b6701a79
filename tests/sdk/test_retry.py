"""The retry flow: a pure generator fed outcomes; no clock, no sleeping, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from stripemeter.client import Retry
from stripemeter.client._retry import (
    Answered,
    Failed,
    Outcome,
    Send,
    Wait,
    backoff_delay,
    parse_retry_after,
    retry_flow,
)

NO_JITTER = Retry(attempts=5, backoff=0.5, max_backoff=30.0, jitter=0.0)


def run(
    retry: Retry | None, outcomes: list[Outcome], *, budget: float | None = None, rand: float = 0.5
) -> tuple[list[Send | Wait], Outcome]:
    """Drive the flow with canned outcomes; the steps it asked for and its final outcome."""
    flow = retry_flow(retry, random=lambda: rand, budget=budget)
    steps: list[Send | Wait] = []
    pending = list(outcomes)
    step = next(flow)
    try:
        while True:
            steps.append(step)
            step = flow.send(pending.pop(0) if isinstance(step, Send) else None)
    except StopIteration as stop:
        return steps, stop.value


class TestRetryFlow:
    def test_a_success_is_sent_once(self) -> None:
        """A 200 ends the flow after one send."""
        steps, final = run(NO_JITTER, [Answered(200)])
        assert steps == [Send(1)]
        assert final == Answered(200)

    def test_5xx_is_retried_with_doubling_waits(self) -> None:
        """503, 502, 500 are retried after 0.5, 1 and 2 seconds, then the 200 is returned."""
        steps, final = run(NO_JITTER, [Answered(503), Answered(502), Answered(500), Answered(200)])
        assert steps == [Send(1), Wait(0.5), Send(2), Wait(1.0), Send(3), Wait(2.0), Send(4)]
        assert final == Answered(200)

    def test_network_errors_are_retried(self) -> None:
        """A refused connection is retried like a 5xx."""
        error = httpx.ConnectError("refused")
        steps, final = run(NO_JITTER, [Failed(error), Answered(200)])
        assert steps == [Send(1), Wait(0.5), Send(2)]
        assert final == Answered(200)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
    def test_4xx_is_never_retried(self, status: int) -> None:
        """A client error is final at once."""
        steps, final = run(NO_JITTER, [Answered(status)])
        assert steps == [Send(1)]
        assert final == Answered(status)

    def test_429_waits_what_retry_after_says(self) -> None:
        """Retry-After replaces the exponential wait."""
        steps, _ = run(NO_JITTER, [Answered(429, retry_after=7.0), Answered(200)])
        assert steps == [Send(1), Wait(7.0), Send(2)]

    def test_429_without_retry_after_backs_off(self) -> None:
        """A bare 429 gets the exponential wait."""
        steps, _ = run(NO_JITTER, [Answered(429), Answered(200)])
        assert steps == [Send(1), Wait(0.5), Send(2)]

    def test_a_retry_after_beyond_the_limit_gives_up(self) -> None:
        """Waiting an hour is not a retry; the 429 is returned."""
        steps, final = run(NO_JITTER, [Answered(429, retry_after=3600.0)])
        assert steps == [Send(1)]
        assert final == Answered(429, retry_after=3600.0)

    def test_attempts_are_bounded(self) -> None:
        """After ``attempts`` sends the last failure is returned."""
        outcomes: list[Outcome] = [Answered(503)] * 3
        steps, final = run(Retry(attempts=3, jitter=0.0), outcomes)
        assert [s for s in steps if isinstance(s, Send)] == [Send(1), Send(2), Send(3)]
        assert final == Answered(503)

    def test_no_retry_policy_sends_once(self) -> None:
        """``retry=None`` disables retries."""
        steps, final = run(None, [Answered(503)])
        assert steps == [Send(1)]
        assert final == Answered(503)

    def test_the_budget_caps_the_total_of_waits(self) -> None:
        """With a 1.6 s budget, waits of 0.5 and 1.0 fit, 2.0 does not."""
        outcomes: list[Outcome] = [Answered(503)] * 5
        steps, final = run(NO_JITTER, outcomes, budget=1.6)
        assert [s for s in steps if isinstance(s, Wait)] == [Wait(0.5), Wait(1.0)]
        assert final == Answered(503)

    def test_a_zero_budget_means_one_try(self) -> None:
        """Budget 0 (used when flushing inline) sends once."""
        steps, _ = run(NO_JITTER, [Answered(503)], budget=0.0)
        assert steps == [Send(1)]


class TestBackoff:
    def test_waits_are_capped(self) -> None:
        """The tenth wait is the cap, not 0.5·2⁹."""
        assert backoff_delay(NO_JITTER, 10, 0.0) == 30.0

    def test_full_jitter_spans_zero_to_the_ceiling(self) -> None:
        """jitter=1 gives waits from 0 to the exponential ceiling."""
        retry = Retry(backoff=1.0, jitter=1.0)
        assert backoff_delay(retry, 3, 0.0) == 0.0
        assert backoff_delay(retry, 3, 0.999) == pytest.approx(3.996)

    def test_half_jitter_keeps_half_the_wait(self) -> None:
        """jitter=0.5 waits between half and all of the ceiling."""
        retry = Retry(backoff=2.0, jitter=0.5)
        assert backoff_delay(retry, 1, 0.0) == 1.0
        assert backoff_delay(retry, 1, 1.0) == 2.0

    def test_invalid_policies_are_refused(self) -> None:
        """Zero attempts or a jitter above 1 make no sense."""
        with pytest.raises(ValueError, match="attempts"):
            Retry(attempts=0)
        with pytest.raises(ValueError, match="jitter"):
            Retry(jitter=1.5)


class TestRetryAfter:
    NOW = datetime(2025, 1, 16, 14, 30, tzinfo=UTC)

    def test_seconds(self) -> None:
        """A number of seconds is taken as is."""
        assert parse_retry_after("12", now=self.NOW) == 12.0

    def test_http_date(self) -> None:
        """An HTTP date is converted to seconds from now."""
        assert parse_retry_after("Thu, 16 Jan 2025 14:30:20 GMT", now=self.NOW) == 20.0

    def test_past_dates_and_garbage(self) -> None:
        """A past date means now; garbage means no header."""
        assert parse_retry_after("Thu, 16 Jan 2025 14:00:00 GMT", now=self.NOW) == 0.0
        assert parse_retry_after("soon", now=self.NOW) is None
        assert parse_retry_after(None, now=self.NOW) is None
