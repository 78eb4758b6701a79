"""Event times: strict RFC 3339 parsing into aware UTC datetimes, and their canonical text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})\Z"
)


class TimeError(ValueError):
    """Text that is not an RFC 3339 timestamp with an offset."""


@dataclass(frozen=True, slots=True)
class EventTime:
    """A parsed event time: the UTC instant (microseconds) and the nanosecond text that keys use."""

    at: datetime
    text: str


def parse_event_time(value: object) -> EventTime:
    """Parse RFC 3339 with a mandatory offset; keep sub-microsecond digits in the canonical text."""
    if not isinstance(value, str):
        raise TimeError("must be an RFC 3339 string such as 2025-01-16T14:30:00Z")
    match = _RFC3339.match(value)
    if match is None:
        raise TimeError("must be RFC 3339 with an offset, such as 2025-01-16T14:30:00Z")
    frac = match["frac"] or ""
    offset = match["offset"].upper()
    try:
        base = datetime.fromisoformat(
            f"{match['date']}T{match['time']}{'+00:00' if offset == 'Z' else offset}"
        )
    except ValueError:
        raise TimeError("is not a valid calendar date and time") from None
    nanos = int(frac.ljust(9, "0")) if frac else 0
    try:
        at = (base + timedelta(microseconds=nanos // 1000)).astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise TimeError("is out of the supported range (years 1-9999 in UTC)") from None
    return EventTime(at=at, text=canonical_time(at, nanos % 1000))


def canonical_time(at: datetime, extra_nanos: int = 0) -> str:
    """``2025-01-16T14:30:00.5Z``: UTC, trailing zeros of the fraction removed, nanoseconds kept."""
    at = at.astimezone(UTC)
    nanos = at.microsecond * 1000 + extra_nanos
    # Not strftime("%Y"): glibc does not pad years before 1000 to four digits.
    head = f"{at.year:04d}-{at:%m-%dT%H:%M:%S}"
    if nanos == 0:
        return f"{head}Z"
    return f"{head}.{str(nanos).rjust(9, '0').rstrip('0')}Z"


def utc(at: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already."""
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)
