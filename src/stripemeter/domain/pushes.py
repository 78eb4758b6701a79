"""Push planning: what to send Stripe for one (mapping, target, customer, period), as a value.

The pusher's two-phase write log keeps, per row, the total Stripe has confirmed and at most one
push in flight. ``plan_push`` turns that row, the local billing total and the time into a
``PushPlan``; it does no I/O and reads no clock.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from stripemeter.domain.periods import Period
from stripemeter.domain.quantities import canonical

STRIPE_PAST_WINDOW = timedelta(days=35)  # Stripe refuses meter events older than this
STRIPE_FUTURE_WINDOW = timedelta(minutes=5)  # … and more than this ahead
STRIPE_DEDUPE_WINDOW = timedelta(hours=24)  # identifiers and Idempotency-Keys are kept this long
PAST_MARGIN = timedelta(hours=1)  # room for retries before an old stamp leaves the 35-day window
LAST_RESERVE = timedelta(hours=1)  # last/max stamps stop this far before period end (see stamp_for)
IDENTIFIER_PREFIX = "smp_"


class ValueMode(enum.StrEnum):
    """What a push carries: the change (sum/count meters) or the value itself (last, legacy set)."""

    DELTA = "delta"
    ABSOLUTE = "absolute"


class PlanKind(enum.StrEnum):
    """What the pusher must do next for a row."""

    NOTHING = "nothing"  # Stripe already has the local total
    SEND = "send"  # write a new intent, then call Stripe
    RESEND = "resend"  # a pending intent: call Stripe again with the same identifier
    VERIFY = "verify"  # a pending intent past the dedupe window: ask Stripe's totals first
    PARK = "park"  # cannot be sent automatically (reason given)


@dataclass(frozen=True, slots=True)
class Pending:
    """A push whose intent is committed but whose result is not yet confirmed."""

    from_total: Decimal
    to_total: Decimal
    stamp: datetime
    since: datetime
    identifier: str


@dataclass(frozen=True, slots=True)
class LogState:
    """One write-log row as the planner sees it."""

    pushed_total: Decimal
    pushed_seq: int
    last_stamp: datetime | None
    pending: Pending | None


@dataclass(frozen=True, slots=True)
class PushPlan:
    """The decision for one row; ``value`` is what goes on the wire (a delta or a total)."""

    kind: PlanKind
    from_total: Decimal = Decimal(0)
    to_total: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    stamp: datetime | None = None
    identifier: str | None = None
    reason: str | None = None

    @property
    def delta(self) -> Decimal:
        """The change this push makes to Stripe's total."""
        return self.to_total - self.from_total


@dataclass(frozen=True, slots=True)
class RowKey:
    """What makes a push identifier unique: tenant, mapping, target, customer and period."""

    tenant_id: str
    mapping_id: str
    target: str
    customer_ref: str
    period: Period


def push_identifier(key: RowKey, from_total: Decimal, to_total: Decimal, seq: int) -> str:
    """The deterministic meter-event identifier (and Idempotency-Key) of one push.

    Besides (tenant, mapping, customer, period, from, to) it hashes the target and the row's
    confirmed-push count, so a total that goes 0→5→0→5 sends two distinct "0→5" pushes rather
    than having Stripe drop the second one as a duplicate of the first.
    """
    parts = [
        key.tenant_id,
        key.mapping_id,
        key.target,
        key.customer_ref,
        key.period.start.isoformat(),
        key.period.end.isoformat(),
        canonical(from_total),
        canonical(to_total),
        str(seq),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"{IDENTIFIER_PREFIX}{digest[:48]}"


def stamp_for(
    period: Period, now: datetime, *, after: datetime | None, monotonic: bool
) -> datetime | None:
    """The event timestamp for a push: inside the period and inside Stripe's window, or None.

    Sums stamp ``now`` (or the period's last second once it has ended). ``last`` meters take the
    value with the greatest timestamp, so their stamps must strictly increase: they start at most
    ``LAST_RESERVE`` before the period end, which leaves room for one push per second after it.
    """
    now = now.replace(microsecond=0)
    low = max(period.start, now - STRIPE_PAST_WINDOW + PAST_MARGIN)
    high = min(period.end - timedelta(seconds=1), now + STRIPE_FUTURE_WINDOW - timedelta(minutes=1))
    if monotonic:
        candidate = min(now, period.end - LAST_RESERVE)
        if after is not None:
            candidate = max(candidate, after + timedelta(seconds=1))
    else:
        candidate = min(now, period.end - timedelta(seconds=1))
    candidate = max(candidate, low)
    if candidate > high or candidate < low:
        return None
    return candidate


def stamp_floor_after(latest_minute: datetime | None, period: Period, now: datetime) -> datetime:
    """The ``last_stamp`` that makes a row's next last/max push land after Stripe's latest event.

    ``latest_minute`` is the start of the minute holding the period's latest event in Stripe
    (summaries have minute resolution), so the next push, one second after the floor, is stamped
    at the following minute's first second: later than any event Stripe has. None (the event
    could not be located) asks for the latest instant allowed. The floor stays low enough for
    the push to be accepted (at most ``period.end - 1 s`` and 4 minutes ahead, as ``stamp_for``):
    when the latest event sits in the period's last minute, or further ahead than Stripe lets us
    stamp yet, the push takes the latest instant allowed and may still lose (a tie, or an event
    ahead of us); reconciliation then reports the drift and the invoice stays held.
    """
    now = now.replace(microsecond=0)
    cap = min(
        period.end - timedelta(seconds=2),
        now + STRIPE_FUTURE_WINDOW - timedelta(minutes=1, seconds=1),
    )
    if latest_minute is None:
        return cap
    return min(latest_minute.replace(second=0, microsecond=0) + timedelta(seconds=59), cap)


def wire_value(value: Decimal, *, whole: bool) -> Decimal:
    """The number sent: exact, or rounded half-up to a whole number (legacy usage records)."""
    if not whole:
        return value
    return value.quantize(Decimal(1), rounding=ROUND_HALF_UP)


def plan_push(
    key: RowKey,
    state: LogState,
    target_total: Decimal,
    now: datetime,
    *,
    mode: ValueMode,
    monotonic: bool,
    whole: bool = False,
    fixed_stamp: bool = False,
) -> PushPlan:
    """Decide the next step for a row: finish the pending push first, else send the difference.

    ``fixed_stamp`` (legacy ``set``) reuses the row's first timestamp for every later push.
    """
    pending = state.pending
    if pending is not None:
        if now - pending.since >= STRIPE_DEDUPE_WINDOW:
            return PushPlan(
                PlanKind.VERIFY,
                pending.from_total,
                pending.to_total,
                stamp=pending.stamp,
                identifier=pending.identifier,
            )
        return PushPlan(
            PlanKind.RESEND,
            pending.from_total,
            pending.to_total,
            _value(pending.from_total, pending.to_total, mode, whole),
            pending.stamp,
            pending.identifier,
        )
    if target_total == state.pushed_total:
        return PushPlan(PlanKind.NOTHING, state.pushed_total, target_total)
    if mode is ValueMode.ABSOLUTE and whole and wire_value(target_total, whole=True) < 0:
        target_total = Decimal(0)  # usage records cannot be negative: a negative total bills 0
        if target_total == state.pushed_total:
            return PushPlan(PlanKind.NOTHING, state.pushed_total, target_total)
    if fixed_stamp and state.last_stamp is not None:
        # ``set`` semantics: every push of the row replaces the quantity at the same instant.
        stamp: datetime | None = state.last_stamp
        if stamp is not None and stamp < now - STRIPE_PAST_WINDOW + PAST_MARGIN:
            stamp = None
    else:
        stamp = stamp_for(key.period, now, after=state.last_stamp, monotonic=monotonic)
    if stamp is None:
        reason = "outside_stripe_window: the period is older than Stripe accepts meter events for"
        if (
            monotonic
            and state.last_stamp is not None
            and state.last_stamp >= key.period.end - timedelta(seconds=1)
        ):
            reason = (
                "no_later_timestamp: a push already holds the period's last second, and a last "
                "meter keeps the latest event"
            )
        return PushPlan(PlanKind.PARK, state.pushed_total, target_total, reason=reason)
    return PushPlan(
        PlanKind.SEND,
        state.pushed_total,
        target_total,
        _value(state.pushed_total, target_total, mode, whole),
        stamp,
        push_identifier(key, state.pushed_total, target_total, state.pushed_seq),
    )


def _value(from_total: Decimal, to_total: Decimal, mode: ValueMode, whole: bool) -> Decimal:
    if mode is ValueMode.DELTA:
        return to_total - from_total
    return wire_value(to_total, whole=whole)


class StaleOutcome(enum.StrEnum):
    """What Stripe's own total says about a pending push older than the dedupe window."""

    DELIVERED = "delivered"
    NOT_DELIVERED = "not_delivered"
    UNKNOWN = "unknown"


def resolve_stale(
    pending_from: Decimal, pending_to: Decimal, stripe_total: Decimal, *, mode: ValueMode
) -> StaleOutcome:
    """Compare Stripe's period total with both ends of the pending push.

    For deltas Stripe's total equals ``from`` (not delivered) or ``to`` (delivered); an absolute
    push is delivered when Stripe shows ``to``. Anything else is left for the reconciler.
    """
    if stripe_total == pending_to:
        return StaleOutcome.DELIVERED
    if mode is ValueMode.DELTA and stripe_total == pending_from:
        return StaleOutcome.NOT_DELIVERED
    if mode is ValueMode.ABSOLUTE:
        return StaleOutcome.NOT_DELIVERED
    return StaleOutcome.UNKNOWN
