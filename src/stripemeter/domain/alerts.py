"""Alert decisions: a value against a rule's thresholds, with hysteresis, snooze and re-notify delay.

Pure functions of (state, value, policy, now). A state moves ``ok → triggered → acknowledged →
resolved`` (and from resolved back to triggered); the caller persists what ``decide`` returns and
sends the notifications it asks for. Same inputs, same decision: evaluating twice never fires twice.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from stripemeter.domain.errors import Conflict, InvalidInput

HUNDRED = Decimal(100)


class RuleType(enum.StrEnum):
    """What a rule watches."""

    USAGE_THRESHOLD = "usage_threshold"
    SPEND_THRESHOLD = "spend_threshold"
    SPIKE = "spike"
    DRIFT = "drift"
    PUSH_FAILURE = "push_failure"
    HELD_EVENTS = "held_events"


class AlertStatus(enum.StrEnum):
    """Where one (rule, customer, metric) stands; ``ok`` means it never fired."""

    OK = "ok"
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Transition(enum.StrEnum):
    """What happened to a state; every one is written to the history."""

    TRIGGERED = "triggered"
    ESCALATED = "escalated"  # a higher threshold was reached
    LOWERED = "lowered"  # fell back below a threshold, still above a lower one (no notification)
    RENOTIFIED = "renotified"  # still firing after the re-notify delay
    REMINDED = "reminded"  # still firing when a snooze ended
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    UNSNOOZED = "unsnoozed"


NOTIFYING = frozenset(
    {
        Transition.TRIGGERED,
        Transition.ESCALATED,
        Transition.RENOTIFIED,
        Transition.REMINDED,
        Transition.RESOLVED,
    }
)
ACTIVE = frozenset({AlertStatus.TRIGGERED, AlertStatus.ACKNOWLEDGED})


@dataclass(frozen=True, slots=True)
class AlertState:
    """The remembered part of one (rule, customer, metric)."""

    status: AlertStatus = AlertStatus.OK
    level: int | None = None  # index of the highest threshold reached
    snoozed_until: datetime | None = None
    notified_at: datetime | None = None
    notify_pending: bool = False  # a notification was held back by a snooze

    def snoozed(self, now: datetime) -> bool:
        """Whether notifications are silenced at ``now``."""
        return self.snoozed_until is not None and now < self.snoozed_until


@dataclass(frozen=True, slots=True)
class Policy:
    """How a rule judges values: ascending thresholds, hysteresis, re-notify delay."""

    thresholds: tuple[Decimal, ...]
    hysteresis: Decimal = Decimal("0.05")  # a fraction of the threshold
    renotify_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state, the transition to record (if any), and whether to notify."""

    state: AlertState
    transition: Transition | None = None
    notify: bool = False

    @property
    def changed(self) -> bool:
        """Whether anything must be written."""
        return self.transition is not None


def clear_point(threshold: Decimal, hysteresis: Decimal) -> Decimal:
    """The value a reached threshold must fall below to stop counting as reached."""
    return threshold - abs(threshold) * hysteresis


def reached_level(
    value: Decimal, thresholds: tuple[Decimal, ...], hysteresis: Decimal, current: int | None
) -> int | None:
    """The highest threshold reached by ``value``; one already reached holds until its clear point."""
    for index in range(len(thresholds) - 1, -1, -1):
        threshold = thresholds[index]
        if value >= threshold:
            return index
        if current is not None and index <= current and value >= clear_point(threshold, hysteresis):
            return index
    return None


def decide(state: AlertState, value: Decimal, policy: Policy, now: datetime) -> Decision:
    """Judge ``value`` at ``now``: the transition it causes and whether anyone is told."""
    active = state.status in ACTIVE
    level = reached_level(
        value, policy.thresholds, policy.hysteresis, state.level if active else None
    )
    kind: Transition | None = None
    nxt = state
    if not active:
        if level is not None:
            nxt, kind = (
                replace(state, status=AlertStatus.TRIGGERED, level=level),
                Transition.TRIGGERED,
            )
    elif level is None:
        nxt, kind = replace(state, status=AlertStatus.RESOLVED, level=None), Transition.RESOLVED
    elif state.level is None or level > state.level:
        nxt, kind = replace(state, status=AlertStatus.TRIGGERED, level=level), Transition.ESCALATED
    elif level < state.level:
        nxt, kind = replace(state, level=level), Transition.LOWERED
    elif state.status is AlertStatus.TRIGGERED and not state.snoozed(now):
        if state.notify_pending:
            kind = Transition.REMINDED
        elif _renotify_due(state, policy, now):
            kind = Transition.RENOTIFIED
    if kind is None or kind not in NOTIFYING:
        return Decision(nxt, kind, False)
    if state.snoozed(now):
        pending = nxt.status is AlertStatus.TRIGGERED
        return Decision(replace(nxt, notify_pending=pending), kind, False)
    return Decision(replace(nxt, notified_at=now, notify_pending=False), kind, True)


def _renotify_due(state: AlertState, policy: Policy, now: datetime) -> bool:
    if policy.renotify_after is None or state.notified_at is None:
        return False
    return now - state.notified_at >= policy.renotify_after


def acknowledge(state: AlertState) -> Decision:
    """Someone has seen a firing alert: stop re-notifying until it escalates or resolves."""
    if state.status is AlertStatus.ACKNOWLEDGED:
        return Decision(state)
    if state.status is not AlertStatus.TRIGGERED:
        raise Conflict(
            f"only a triggered alert can be acknowledged (this one is {state.status.value})",
            code="alert_not_triggered",
        )
    return Decision(replace(state, status=AlertStatus.ACKNOWLEDGED), Transition.ACKNOWLEDGED)


def snooze(state: AlertState, until: datetime | None, now: datetime) -> Decision:
    """Silence notifications until ``until`` (None lifts a snooze); states still change meanwhile."""
    if until is None:
        if state.snoozed_until is None:
            return Decision(state)
        return Decision(replace(state, snoozed_until=None), Transition.UNSNOOZED)
    if until <= now:
        raise InvalidInput("until must be in the future", code="invalid_parameter", param="until")
    return Decision(replace(state, snoozed_until=until), Transition.SNOOZED)


def effective_thresholds(
    thresholds: tuple[Decimal, ...], *, percent_of_limit: bool, limit: Decimal | None
) -> tuple[Decimal, ...] | None:
    """Absolute thresholds; percentages of ``limit`` when asked (None when there is no limit)."""
    if not percent_of_limit:
        return thresholds
    if limit is None:
        return None
    return tuple(limit * t / HUNDRED for t in thresholds)


def retry_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.0) -> timedelta:
    """Backoff before delivery attempt ``attempt + 1``: doubling from ``base``, at most ``cap``.

    ``jitter`` in [0, 1) spreads retries by up to a quarter of the delay; the caller draws it.
    """
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return timedelta(seconds=delay * (1 + jitter / 4))


SIGNATURE_HEADER = "StripeMeter-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of ``timestamp.body`` with ``secret``, hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``StripeMeter-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC>``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), sign(secret, timestamp, body))
