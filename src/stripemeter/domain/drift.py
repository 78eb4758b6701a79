"""Drift math: how far Stripe's total is from ours, what that means, and which repair fits.

Pure values and decisions for the reconciler; no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from stripemeter.domain.quantities import ZERO

DEFAULT_EPSILON = Decimal("0.005")  # 0.5 % relative drift, as the original product's policy
DRIFT_PCT_PLACES = Decimal("0.000001")


class ReportStatus(enum.StrEnum):
    """The verdict on one (mapping, target, customer, period)."""

    OK = "ok"  # Stripe agrees with us within epsilon
    DRIFT = "drift"  # Stripe disagrees, nothing in flight explains it (re-checked)
    PENDING = "pending"  # a push is in flight, or Stripe has not caught up yet
    UNMAPPED = "unmapped"  # no Stripe mapping for the metric or no Stripe customer
    ERROR = "error"  # Stripe's total could not be read


class RepairKind(enum.StrEnum):
    """The concrete repair a drift calls for."""

    PUSH_MISSING = "push_missing"  # Stripe has less: send the missing delta
    COMPENSATE = "compensate"  # Stripe has more: send a negative delta (sum meters)
    RESEND = "resend"  # last/max/legacy: send our value again, it replaces Stripe's
    TRUE_UP = "true_up"  # the invoice is finalized: invoice item or credit note


@dataclass(frozen=True, slots=True)
class Drift:
    """``|local - stripe|`` and that relative to local."""

    absolute: Decimal
    relative: Decimal

    def within(self, epsilon: Decimal) -> bool:
        """Whether the relative drift is tolerated."""
        return self.relative <= epsilon


def drift_between(local: Decimal, stripe: Decimal) -> Drift:
    """Drift relative to the local total; any difference from a zero local total is 100 %."""
    absolute = abs(local - stripe)
    if absolute == ZERO:
        return Drift(ZERO, ZERO)
    if local == ZERO:
        return Drift(absolute, Decimal(1))
    return Drift(absolute, (absolute / abs(local)).quantize(DRIFT_PCT_PLACES))


@dataclass(frozen=True, slots=True)
class Observation:
    """What the reconciler saw for one key."""

    local: Decimal  # ledger + approved adjustments (the counter's billing value)
    pushed: Decimal | None  # confirmed by the write log
    stripe: Decimal | None  # Stripe's own total, None when it could not be read
    in_flight: bool = False  # a push intent is pending, or a counter change is not pushed yet
    parked: bool = False  # the pusher gave up on the row until someone acts
    trued_up: Decimal = ZERO  # quantity billed outside the meter (closed periods)
    mapped: bool = True
    stripe_error: str | None = None
    closed: bool = False  # the invoice is finalized: no push will ever close the gap


@dataclass(frozen=True, slots=True)
class Verdict:
    """A status, the drift, and why."""

    status: ReportStatus
    drift: Drift | None
    detail: str | None = None

    @property
    def needs_recheck(self) -> bool:
        """Whether the verdict waits on Stripe catching up (re-read before calling it drift)."""
        return self.status is ReportStatus.PENDING and self.detail == STRIPE_LAGGING


STRIPE_LAGGING = "stripe_not_consistent: Stripe's total differs from what it confirmed"


def classify(seen: Observation, epsilon: Decimal, *, rechecked: bool = False) -> Verdict:
    """Decide a key's status; a difference nothing explains is ``pending`` until re-checked."""
    if not seen.mapped:
        return Verdict(ReportStatus.UNMAPPED, None, "no Stripe mapping for this metric/customer")
    if seen.stripe is None:
        return Verdict(ReportStatus.ERROR, None, seen.stripe_error or "Stripe total unavailable")
    drift = drift_between(seen.local, seen.stripe + seen.trued_up)
    if drift.within(epsilon):
        return Verdict(ReportStatus.OK, drift)
    if seen.parked:
        return Verdict(ReportStatus.DRIFT, drift, "push parked: the pusher needs an operator")
    unpushed = seen.pushed is not None and seen.pushed != seen.local and not seen.closed
    if seen.in_flight or unpushed:
        return Verdict(ReportStatus.PENDING, drift, "push_in_flight: local changes not yet pushed")
    if not rechecked and not seen.closed:
        return Verdict(ReportStatus.PENDING, drift, STRIPE_LAGGING)
    return Verdict(ReportStatus.DRIFT, drift, "Stripe's total differs from the confirmed pushes")


@dataclass(frozen=True, slots=True)
class Repair:
    """A suggested repair: what to do and by how much (positive: Stripe needs more)."""

    kind: RepairKind
    delta: Decimal
    description: str


def suggest_repair(
    local: Decimal, stripe: Decimal, trued_up: Decimal, *, additive: bool, closed: bool
) -> Repair | None:
    """The repair that brings Stripe to the local total, or None when none is needed."""
    delta = local - stripe - trued_up
    if delta == ZERO:
        return None
    if closed:
        what = "invoice item on the next invoice" if delta > 0 else "credit note"
        return Repair(RepairKind.TRUE_UP, delta, f"period invoiced: true up {delta} as a {what}")
    if not additive:
        return Repair(
            RepairKind.RESEND, delta, f"resend the local value {local} (replaces {stripe})"
        )
    if delta > 0:
        return Repair(RepairKind.PUSH_MISSING, delta, f"push the missing {delta}")
    return Repair(RepairKind.COMPENSATE, delta, f"push a compensating {delta}")


@dataclass(frozen=True, slots=True)
class Totals:
    """Summed totals of several report rows."""

    local: Decimal = ZERO
    stripe: Decimal = ZERO
    items: int = 0

    def add(self, local: Decimal, stripe: Decimal | None) -> Totals:
        """Add one row (a missing Stripe total counts as zero)."""
        return Totals(self.local + local, self.stripe + (stripe or ZERO), self.items + 1)

    @property
    def drift(self) -> Drift:
        """The drift of the sums."""
        return drift_between(self.local, self.stripe)


class LatenessTier(enum.StrEnum):
    """Where a correction of a period goes, by Stripe's limits."""

    IN_PERIOD = "in_period"  # invoice not finalized: a ± delta inside the period
    TRUE_UP = "true_up"  # invoice finalized: invoice item or credit note on the next invoice


def lateness_tier(period_closed: bool) -> LatenessTier:
    """The tier of a correction for a period (closed = its invoice is finalized)."""
    return LatenessTier.TRUE_UP if period_closed else LatenessTier.IN_PERIOD


@dataclass(frozen=True, slots=True)
class LineParity:
    """One invoice usage line against our counter and price."""

    stripe_quantity: Decimal
    local_quantity: Decimal
    stripe_amount: int | None
    expected_amount: int | None

    @property
    def quantity_drift(self) -> Drift:
        """Drift of the quantity."""
        return drift_between(self.local_quantity, self.stripe_quantity)

    def holds(self, epsilon: Decimal) -> bool:
        """Whether quantity (within epsilon) and amount (to the minor unit, when priced) agree."""
        if not self.quantity_drift.within(epsilon):
            return False
        if self.stripe_amount is None or self.expected_amount is None:
            return True
        amount = drift_between(Decimal(self.expected_amount), Decimal(self.stripe_amount))
        return amount.within(epsilon)
