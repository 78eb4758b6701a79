"""Currencies as Stripe's API counts them: minor units, and conversion to and from major amounts.

Stripe expresses every amount as an integer count of the currency's minor unit. That is the ISO 4217
exponent for most currencies, but Stripe's list wins where the two differ (UGX and MGA are
zero-decimal at Stripe; ISK stays two-decimal in the API although only whole króna may be charged).
Source: https://docs.stripe.com/currencies ("Zero-decimal currencies", "Three-decimal currencies",
"Special cases").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from stripemeter.domain.pricing.errors import PricingError

ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Two-decimal in the API, but a charge must be a whole number of major units (amount % 100 == 0).
WHOLE_UNIT_CHARGE_CURRENCIES = frozenset({"isk"})

_CODE = re.compile(r"[a-z]{3}\Z")


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency code with Stripe's minor-unit exponent and the increment a charge must respect."""

    code: str
    exponent: int
    charge_increment: int = 1  # in minor units; 10 for three-decimal currencies, 100 for ISK

    @property
    def minor_per_major(self) -> int:
        """How many minor units make one major unit (100 for USD, 1 for JPY, 1000 for KWD)."""
        return int(10**self.exponent)

    @property
    def is_zero_decimal(self) -> bool:
        """True when Stripe's minor unit is the major unit (JPY, KRW, …)."""
        return self.exponent == 0

    def __str__(self) -> str:
        return self.code


def currency(code: str | Currency) -> Currency:
    """The Stripe currency for a three-letter ISO code, in any letter case."""
    if isinstance(code, Currency):
        return code
    if not isinstance(code, str) or not _CODE.match(code.lower()):
        raise PricingError(
            f"currency must be a three-letter ISO 4217 code, got {code!r}", param="currency"
        )
    lower = code.lower()
    if lower in ZERO_DECIMAL_CURRENCIES:
        return Currency(lower, 0)
    if lower in THREE_DECIMAL_CURRENCIES:
        # Stripe's payment flows require the last digit of a three-decimal amount to be 0.
        return Currency(lower, 3, charge_increment=10)
    if lower in WHOLE_UNIT_CHARGE_CURRENCIES:
        return Currency(lower, 2, charge_increment=100)
    return Currency(lower, 2)


def to_minor_units(major: Decimal, of: Currency) -> Decimal:
    """The exact minor-unit value of a major amount (``1.055`` USD → ``105.5``); never rounds."""
    return major.scaleb(of.exponent)


def to_major_units(minor: Decimal | int, of: Currency) -> Decimal:
    """The exact major amount of a minor-unit value (``1999`` USD is ``19.99``)."""
    return Decimal(minor).scaleb(-of.exponent)


def round_minor_units(amount: Decimal) -> int:
    """Round an exact minor-unit amount to a whole minor unit, halves away from zero.

    Stripe rounds each invoice line to the nearest minor unit: 0.05 cent * 30 = 1.5 cents is
    charged as 2 (https://docs.stripe.com/billing/subscriptions/decimal-amounts).
    """
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def whole_minor_units(amount: Decimal, of: Currency, *, param: str) -> int:
    """A minor-unit amount that must already be whole; a precise error names ``param`` otherwise."""
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise PricingError(
            f"{param} must be a whole number of {of.code.upper()} minor units, got {amount}",
            param=param,
        )
    return int(amount)
