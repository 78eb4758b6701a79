"""Minor units as Stripe counts them, and conversion between minor and major amounts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripemeter.domain.pricing import (
    PricingError,
    currency,
    round_minor_units,
    to_major_units,
    to_minor_units,
)

D = Decimal


@pytest.mark.parametrize("code", ["JPY", "krw", "vnd", "CLP", "ugx", "xof"])
def test_zero_decimal_currencies_have_no_minor_unit(code: str) -> None:
    """Stripe's zero-decimal currencies count whole units: 500 JPY is an amount of 500."""
    cur = currency(code)
    assert cur.exponent == 0
    assert cur.is_zero_decimal
    assert to_minor_units(D(500), cur) == 500


@pytest.mark.parametrize("code", ["bhd", "JOD", "kwd", "omr", "tnd"])
def test_three_decimal_currencies_count_thousandths(code: str) -> None:
    """Three-decimal currencies have 1000 minor units, and charges move in steps of 10."""
    cur = currency(code)
    assert cur.minor_per_major == 1000
    assert cur.charge_increment == 10
    assert to_minor_units(D("5.124"), cur) == 5124


def test_isk_stays_two_decimal_but_charges_whole_kronur() -> None:
    """ISK is two-decimal in Stripe's API although a charge must be a multiple of 100."""
    isk = currency("isk")
    assert (isk.exponent, isk.charge_increment) == (2, 100)


def test_other_currencies_are_two_decimal_and_lower_case() -> None:
    """USD and any other listed code count hundredths; codes are kept in lower case."""
    usd = currency("USD")
    assert (usd.code, usd.exponent, str(usd)) == ("usd", 2, "usd")


@pytest.mark.parametrize("code", ["us", "usdd", "12a", "", "u$d"])
def test_malformed_codes_are_refused(code: str) -> None:
    """A currency must be a three-letter code."""
    with pytest.raises(PricingError) as caught:
        currency(code)
    assert caught.value.param == "currency"


def test_conversions_are_exact_both_ways() -> None:
    """$1.055 is 105.5 cents and 1999 cents are $19.99, with no rounding."""
    usd = currency("usd")
    assert to_minor_units(D("1.055"), usd) == D("105.5")
    assert to_major_units(1999, usd) == D("19.99")
    assert to_major_units(500, currency("jpy")) == 500


@pytest.mark.parametrize(
    ("exact", "whole"),
    [(D("1.5"), 2), (D("2.5"), 3), (D("0.4999"), 0), (D("-1.5"), -2), (D(7), 7)],
)
def test_rounding_to_minor_units_sends_halves_away_from_zero(exact: Decimal, whole: int) -> None:
    """Halves round away from zero, as in Stripe's 1.5 cents → 2 cents example."""
    assert round_minor_units(exact) == whole
