"""Counter state and the fold that builds it: one commutative rule shared by ingest and replay."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import msgspec

from stripemeter.domain.quantities import ZERO


class Aggregation(enum.StrEnum):
    """How a metric's period total is formed for billing."""

    SUM = "sum"
    MAX = "max"
    LAST = "last"
    COUNT = "count"


class Contribution(msgspec.Struct, frozen=True):
    """One counted thing: an accepted event, or an approved adjustment.

    ``order_key`` (then the value) breaks ties between equal times for ``last``, so the result never
    depends on arrival order. Pure adjustments (``counts_as_event`` false) change only the sum.
    A Struct: ingest builds one per event, and a Struct is built in C.
    """

    quantity: Decimal
    at: datetime
    order_key: str
    counts_as_event: bool = True


@dataclass(frozen=True, slots=True)
class CounterState:
    """Running aggregates of one (tenant, metric, customer, period)."""

    sum: Decimal = ZERO
    max: Decimal | None = None
    last: Decimal | None = None
    last_at: datetime | None = None
    last_key: str | None = None
    count: int = 0
    watermark: datetime | None = None

    def value(self, aggregation: Aggregation) -> Decimal:
        """The billing value of this period under ``aggregation`` (zero when nothing was counted)."""
        if aggregation is Aggregation.SUM:
            return self.sum
        if aggregation is Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation is Aggregation.MAX:
            return self.max if self.max is not None else ZERO
        return self.last if self.last is not None else ZERO


EMPTY = CounterState()


def fold(state: CounterState, item: Contribution) -> CounterState:
    """Add one contribution to a counter; the order of folding never changes the result."""
    return fold_all(state, (item,))


def fold_all(state: CounterState, items: Iterable[Contribution]) -> CounterState:
    """Fold many contributions in one pass; the same state as folding them one by one."""
    total, count, high, mark = state.sum, state.count, state.max, state.watermark
    top = None if state.last_at is None else (state.last_at, state.last_key or "", state.last)
    for item in items:
        # (time, key, value) orders any two contributions, so the winner never depends on arrival.
        quantity, at, order_key = item.quantity, item.at, item.order_key
        total += quantity
        if not item.counts_as_event:
            continue
        count += 1
        if high is None or quantity > high:
            high = quantity
        if mark is None or at > mark:
            mark = at
        if top is None or (at, order_key, quantity) > top:
            top = (at, order_key, quantity)
    if count == state.count:
        return replace(state, sum=total)
    assert top is not None  # an event was folded
    return CounterState(total, high, top[2], top[0], top[1], count, mark)
