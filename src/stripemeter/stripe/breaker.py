"""A circuit breaker per Stripe account: stop calling an account that keeps failing, probe later.

Unlike the original product's breaker it wraps no closure: callers ask ``allow`` before a call and
report the outcome, so a reopened breaker can never replay an old request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

FAILURE_THRESHOLD = 5  # consecutive transient failures that open the breaker
RESET_TIMEOUT = 10.0  # seconds the breaker stays open before one probe call is let through


class BreakerState(enum.IntEnum):
    """Closed: calls flow. Open: calls refused. Half-open: one probe in flight."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass
class CircuitBreaker:
    """Consecutive-failure breaker; ``now`` is passed in, so tests need no clock."""

    threshold: int = FAILURE_THRESHOLD
    reset_timeout: float = RESET_TIMEOUT
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    _probing: bool = field(default=False, repr=False)
    _probe_at: float = field(default=0.0, repr=False)

    def allow(self, now: float) -> bool:
        """Whether a call may go out now (moving open → half-open when the timeout passed).

        A probe whose outcome never comes back (its caller died with an unexpected error or was
        cancelled) counts as lost after ``reset_timeout``, and another probe is let through:
        otherwise the breaker would refuse every call of the account for the process's life.
        """
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.reset_timeout:
            self.state = BreakerState.HALF_OPEN
            self._probing = False
        if self.state is BreakerState.HALF_OPEN and (
            not self._probing or now - self._probe_at >= self.reset_timeout
        ):
            self._probing = True
            self._probe_at = now
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until the breaker lets a probe through."""
        return max(0.0, self.reset_timeout - (now - self.opened_at))

    def record_success(self) -> None:
        """A call succeeded: close."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._probing = False

    def record_failure(self, now: float) -> None:
        """A call failed transiently: count it, and open at the threshold or on a failed probe."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now
            self._probing = False

    def cancel_probe(self) -> None:
        """The call ``allow`` let through was not made after all: the next one may probe."""
        if self.state is BreakerState.HALF_OPEN:
            self._probing = False

    def record_neutral(self) -> None:
        """A call ended in a way that says nothing about the account's health (e.g. a 400)."""
        if self.state is BreakerState.HALF_OPEN:
            self.record_success()
