"""Retry decisions as a pure flow: it yields what to do next and is sent what happened.

Like httpx's ``Auth.auth_flow``, ``retry_flow`` does no I/O, never sleeps and reads no clock, so
one implementation serves the sync and the async client (each drives it with its own ``send`` and
``sleep``) and tests feed it outcomes directly::

    flow = retry_flow(retry, random=rng.random)
    step = next(flow)                      # Send(attempt=1)
    step = flow.send(Answered(503))        # Wait(seconds=…)
    step = flow.send(None)                 # Send(attempt=2)
    flow.send(Answered(200))               # StopIteration(value=Answered(200))
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from stripemeter.client._config import Retry


@dataclass(frozen=True, slots=True)
class Send:
    """Send the request now; ``attempt`` counts from 1."""

    attempt: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep this many seconds, then send ``None`` back to the flow."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Answered:
    """The server answered with ``status``; ``retry_after`` is its Retry-After in seconds, if any."""

    status: int
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """No answer: the transport raised ``error`` (connection refused, reset, timeout…)."""

    error: Exception


Outcome = Answered | Failed
Step = Send | Wait
RetryFlow = Generator[Step, "Outcome | None", Outcome]


def backoff_delay(retry: Retry, retry_number: int, rand: float) -> float:
    """The wait before retry ``retry_number`` (1-based): capped exponential, partly random.

    ``rand`` is a number in [0, 1); with ``jitter`` j the wait is ``d·(1 - j) + d·j·rand`` where
    ``d = min(max_backoff, backoff·2^(n-1))``, so clients that failed together spread out.
    """
    ceiling = min(retry.max_backoff, retry.backoff * 2.0 ** (retry_number - 1))
    return ceiling * (1.0 - retry.jitter) + ceiling * retry.jitter * rand


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def next_delay(
    retry: Retry | None,
    outcome: Outcome,
    *,
    attempt: int,
    waited: float,
    budget: float | None,
    rand: float,
) -> float | None:
    """Seconds to wait before trying again after ``outcome`` of try ``attempt``, or None to stop.

    Stops on a final answer (2xx-4xx except the retried statuses), when the attempts are used
    up, when a Retry-After exceeds ``max_retry_after``, and when the wait would take the total of
    waits past ``budget`` seconds.
    """
    if retry is None or attempt >= retry.attempts:
        return None
    if isinstance(outcome, Answered):
        if outcome.status not in retry.retry_statuses:
            return None
        if outcome.retry_after is not None:
            if outcome.retry_after > retry.max_retry_after:
                return None
            delay = outcome.retry_after
        else:
            delay = backoff_delay(retry, attempt, rand)
    else:
        delay = backoff_delay(retry, attempt, rand)
    if budget is not None and waited + delay > budget:
        return None
    return delay


def retry_flow(
    retry: Retry | None, *, random: Callable[[], float], budget: float | None = None
) -> RetryFlow:
    """Drive one request through its retries; returns the last outcome.

    Yields ``Send`` (the driver sends and answers with an ``Outcome``) or ``Wait`` (the driver
    sleeps and answers ``None``). ``random`` gives the jitter; ``budget`` caps the total of waits.
    """
    attempt = 1
    waited = 0.0
    while True:
        outcome = yield Send(attempt)
        if outcome is None:
            raise TypeError("send an Outcome back after a Send step")
        delay = next_delay(
            retry, outcome, attempt=attempt, waited=waited, budget=budget, rand=random()
        )
        if delay is None:
            return outcome
        waited += delay
        yield Wait(delay)
        attempt += 1
