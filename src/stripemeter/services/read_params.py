"""Query parameters shared by the read routes: instants, months, aliases, unknown names, cursors."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.periods import BillingCycle, Period, month_from_label, period_named
from stripemeter.domain.times import TimeError, parse_event_time

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def reject_unknown(names: Iterable[str], allowed: frozenset[str]) -> None:
    """Refuse query parameters a route does not know, so a typo never widens a query silently."""
    unknown = sorted(set(names) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise InvalidInput(
            f"unknown query parameter {unknown[0]!r}; this route accepts: {known}",
            code="unknown_parameter",
            param=unknown[0],
        )


def pick(
    primary: str, primary_value: str | None, alias: str, alias_value: str | None
) -> tuple[str, str | None]:
    """(name, value) of a parameter that has an alias; both given with different values is an error."""
    if primary_value is not None and alias_value is not None and primary_value != alias_value:
        raise InvalidInput(
            f"{alias} is an alias of {primary}; give one of them",
            code="conflicting_parameters",
            param=alias,
        )
    if primary_value is not None:
        return primary, primary_value
    return alias, alias_value


def parse_instant(value: str, param: str) -> datetime:
    """An RFC 3339 instant with an offset, or a bare ``YYYY-MM-DD`` meaning midnight UTC."""
    if _DATE.fullmatch(value):
        try:
            return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidInput(
                f"{param} is not a valid calendar date", code="invalid_time", param=param
            ) from None
    try:
        return parse_event_time(value).at
    except TimeError as exc:
        hint = " (send '+' in a URL as %2B)" if " " in value else ""
        raise InvalidInput(f"{param} {exc}{hint}", code="invalid_time", param=param) from None


def parse_month(value: str, param: str = "period") -> Period:
    """A calendar month written ``YYYY-MM``."""
    try:
        return month_from_label(value)
    except ValueError as exc:
        raise InvalidInput(f"{param} {exc}", code="invalid_period", param=param) from None


def parse_period(value: str, cycle: BillingCycle | None = None, param: str = "period") -> Period:
    """A period named ``YYYY-MM`` (the one starting in that month) or ``YYYY-MM-DD`` (containing it)."""
    try:
        return period_named(value, cycle)
    except ValueError as exc:
        raise InvalidInput(f"{param} {exc}", code="invalid_period", param=param) from None


def check_length(value: str | None, param: str, maximum: int) -> str | None:
    """A text filter of 1 to ``maximum`` characters (or absent)."""
    if value is not None and not 1 <= len(value) <= maximum:
        raise InvalidInput(
            f"{param} must be 1 to {maximum} characters", code="invalid_parameter", param=param
        )
    return value


def encode_cursor(kind: str, position: Any) -> str:
    """An opaque cursor: url-safe base64 of the listing kind and the last position returned."""
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> Any:
    """The position inside a cursor made by ``encode_cursor`` for the same kind of listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("k") != kind or "p" not in data:
        raise InvalidInput(
            "cursor is not a cursor returned by this listing; pass nextCursor unchanged",
            code="invalid_cursor",
            param="cursor",
        )
    return data["p"]
