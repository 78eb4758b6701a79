"""Retry and backoff as a pure decision: fed an error and the attempt number, it returns what to do.

Like procrastinate's ``RetryStrategy`` it never sleeps or writes; the pusher acts on the decision.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stripemeter.stripe.errors import (
    CallSlotBusy,
    CircuitOpen,
    DuplicateIdentifier,
    Permanent,
    RateLimited,
    StripeCallError,
    Transient,
)

IN_CALL_ATTEMPTS = 3  # tries of one request before the row is rescheduled
BASE_DELAY = 0.2  # seconds before the first in-call retry
MAX_DELAY = 5.0  # seconds: the cap of one in-call wait
ROW_BASE_DELAY = 2.0  # seconds before a rescheduled row is tried again
ROW_MAX_DELAY = 600.0  # seconds: the cap of a row's backoff
RATE_LIMIT_NO_RETRY_DELAY = 60.0  # seconds: a 429 that Stripe says not to retry soon


class Action(enum.StrEnum):
    """What to do after a failed call."""

    DELIVERED = "delivered"  # the failure says Stripe already has it
    RETRY = "retry"  # call again after ``delay``
    RESCHEDULE = "reschedule"  # give up for now; the row comes back after ``delay``
    PARK = "park"  # stop: a person must look (the reason goes to the write log)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The decision and, for waits, how long."""

    action: Action
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Stripe-Should-Retry`` and ``Retry-After``."""

    attempts: int = IN_CALL_ATTEMPTS
    base_delay: float = BASE_DELAY
    max_delay: float = MAX_DELAY
    row_base_delay: float = ROW_BASE_DELAY
    row_max_delay: float = ROW_MAX_DELAY

    def decide(self, error: StripeCallError, attempt: int, jitter: float) -> RetryDecision:
        """Decide after ``attempt`` (1-based) failed with ``error``; ``jitter`` is in [0, 1)."""
        if isinstance(error, DuplicateIdentifier):
            return RetryDecision(Action.DELIVERED)
        if isinstance(error, CircuitOpen | CallSlotBusy):  # refused here, Stripe never saw it
            return RetryDecision(Action.RESCHEDULE, error.retry_after or self.row_base_delay)
        if error.should_retry is False:
            # Stripe says this exact request will not succeed if repeated now. A 429 still passes
            # with time; anything else needs a person.
            if isinstance(error, RateLimited):
                return RetryDecision(Action.RESCHEDULE, RATE_LIMIT_NO_RETRY_DELAY)
            return RetryDecision(Action.PARK)
        retryable = error.should_retry is True or (
            isinstance(error, Transient) and not isinstance(error, Permanent)
        )
        if not retryable:
            return RetryDecision(Action.PARK)
        if attempt < self.attempts:
            delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * (0.5 + jitter / 2)
            return RetryDecision(Action.RETRY, max(delay, error.retry_after or 0.0))
        return RetryDecision(Action.RESCHEDULE, self.row_delay(1, jitter))

    def row_delay(self, row_attempts: int, jitter: float) -> float:
        """How long a row that keeps failing waits before its next try (exponential, jittered)."""
        raw = self.row_base_delay * float(2 ** min(max(row_attempts - 1, 0), 16))
        return min(self.row_max_delay, raw) * (0.5 + jitter / 2)
