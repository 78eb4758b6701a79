"""Exact decimal quantities: parsing, bounds and the canonical text form used in keys and storage."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_INTEGER_DIGITS = 26
MAX_FRACTION_DIGITS = 12
ZERO = Decimal(0)


class QuantityError(ValueError):
    """A quantity that cannot be represented exactly within our bounds."""


def parse_quantity(value: object) -> Decimal:
    """Turn a JSON number or numeric string into an exact, bounded Decimal."""
    if isinstance(value, bool):
        raise QuantityError("must be a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest text that round-trips, so 0.1 stays 0.1 rather than 0.1000000000000000055…
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text or text != value:
            raise QuantityError("must be a decimal number without surrounding spaces")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise QuantityError("must be a decimal number") from None
    else:
        raise QuantityError("must be a number")
    if not number.is_finite():
        raise QuantityError("must be finite")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers have an integer exponent
    fraction_digits = max(0, -exponent)
    if fraction_digits > MAX_FRACTION_DIGITS:
        trimmed = number.normalize()
        trimmed_exp = trimmed.as_tuple().exponent
        assert isinstance(trimmed_exp, int)
        if -trimmed_exp > MAX_FRACTION_DIGITS:
            raise QuantityError(f"must have at most {MAX_FRACTION_DIGITS} digits after the point")
        number = trimmed
    if abs(number) >= Decimal(10) ** MAX_INTEGER_DIGITS:
        raise QuantityError(f"must be less than 10^{MAX_INTEGER_DIGITS} in magnitude")
    return number + ZERO  # folds -0 into 0


def canonical(number: Decimal) -> str:
    """The one text form of a value: no exponent, no trailing zeros, no ``-0``."""
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def normalize(number: Decimal) -> Decimal:
    """The same value with the fewest digits (``5.000`` → ``5``) and never in exponent form."""
    return Decimal(canonical(number))
