"""Billing-period arithmetic for subscriptions: anchored intervals, months clamped to their end."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

_FIXED = {"day": 86400, "week": 7 * 86400}


def shift(anchor: int, interval: str, count: int, steps: int) -> int:
    """Return ``anchor`` moved by ``steps * count`` intervals (month ends clamp, as in Stripe)."""
    if interval in _FIXED:
        return anchor + _FIXED[interval] * count * steps
    base = datetime.fromtimestamp(anchor, UTC)
    months = count * steps * (12 if interval == "year" else 1)
    total = base.year * 12 + (base.month - 1) + months
    year, month = divmod(total, 12)
    day = min(base.day, calendar.monthrange(year, month + 1)[1])
    return int(base.replace(year=year, month=month + 1, day=day).timestamp())


def period_containing(anchor: int, interval: str, count: int, at: int) -> tuple[int, int]:
    """Return the anchored period ``[start, end)`` that contains ``at`` (``at >= anchor``)."""
    steps = 0
    # Start from an estimate so long histories do not loop month by month from the anchor.
    approx = {"day": 86400, "week": 7 * 86400, "month": 28 * 86400, "year": 365 * 86400}[
        interval
    ] * count
    steps = max(0, (at - anchor) // approx - 1)
    while shift(anchor, interval, count, steps + 1) <= at:
        steps += 1
    while steps > 0 and shift(anchor, interval, count, steps) > at:
        steps -= 1
    return shift(anchor, interval, count, steps), shift(anchor, interval, count, steps + 1)
