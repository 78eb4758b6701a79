"""Whether an event is on time, late but countable, or too late to count without review."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

DEFAULT_LATENESS_WINDOW = timedelta(hours=48)


class Lateness(enum.Enum):
    """The verdict for one event against its counter's watermark."""

    ON_TIME = "on_time"
    LATE = "late"  # older than the watermark but inside the window: counted
    BEYOND_WINDOW = "beyond_lateness_window"  # held for review, not counted


def judge(at: datetime, watermark: datetime | None, window: timedelta) -> Lateness:
    """Compare an event time with the greatest time already folded into its counter."""
    if watermark is None or at >= watermark:
        return Lateness.ON_TIME
    if at < watermark - window:
        return Lateness.BEYOND_WINDOW
    return Lateness.LATE
