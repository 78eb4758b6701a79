"""Invariants of line pricing and invoices, checked on generated prices and quantities."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from stripemeter.domain.periods import calendar_month
from stripemeter.domain.pricing import (
    Credit,
    InvoiceRequest,
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    Tier,
    TieredPrice,
    TiersMode,
    UsageItem,
    currency,
    price_line,
    round_minor_units,
    simulate_invoice,
)

_JAN = datetime(2024, 1, 15, tzinfo=UTC)

USD = currency("usd")
D = Decimal

quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False)
unit_amounts = st.decimals(min_value=0, max_value=10**4, places=4, allow_nan=False)
flat_amounts = st.integers(min_value=0, max_value=10**6)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), max_size=5)))
    ups: list[int | None] = [*bounds, None]
    return tuple(Tier(up, draw(unit_amounts), draw(flat_amounts)) for up in ups)


@given(tier_lists(), quantities, quantities)
def test_graduated_total_never_falls_as_quantity_grows(
    tiers: tuple[Tier, ...], a: Decimal, b: Decimal
) -> None:
    """With non-negative prices, more usage never costs less under graduated tiers."""
    price = TieredPrice(USD, TiersMode.GRADUATED, tiers)
    low, high = sorted((a, b))
    assert price_line(price, low).amount <= price_line(price, high).amount


@given(tier_lists(), quantities)
def test_graduated_parts_add_up_to_the_quantity(tiers: tuple[Tier, ...], q: Decimal) -> None:
    """Graduated tiers share out exactly the quantity, and the line is their rounded sum."""
    line = price_line(TieredPrice(USD, TiersMode.GRADUATED, tiers), q)
    assert sum(p.quantity for p in line.parts) == q
    assert line.amount == round_minor_units(sum((p.amount for p in line.parts), D(0)))
    assert abs(line.rounding) <= D("0.5")


@given(tier_lists(), quantities)
def test_volume_is_the_tier_price_times_quantity_plus_flat(
    tiers: tuple[Tier, ...], q: Decimal
) -> None:
    """Volume total == round(tier unit amount x quantity + tier flat amount) for q's tier."""
    # q's tier is the one after every finite up_to that q exceeds.
    tier = tiers[sum(1 for t in tiers if t.up_to is not None and q > t.up_to)]
    line = price_line(TieredPrice(USD, TiersMode.VOLUME, tiers), q)
    exact = Fraction(tier.unit_amount_decimal) * Fraction(q) + tier.flat_amount
    assert line.amount == math.floor(exact + Fraction(1, 2))


@given(
    st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False),
    st.integers(min_value=1, max_value=10**5),
    st.integers(min_value=0, max_value=10**5),
    st.sampled_from(list(PackageRounding)),
)
def test_package_amount_is_whole_packages_times_unit_amount(
    q: Decimal, divide_by: int, unit: int, rounding: PackageRounding
) -> None:
    """Package amount == ceil or floor(q / divide_by) x unit_amount."""
    ratio = Fraction(q) / divide_by
    whole = math.ceil(ratio) if rounding is PackageRounding.UP else math.floor(ratio)
    price = PackagePrice(USD, D(unit), divide_by, rounding)
    assert price_line(price, q).amount == whole * unit


@given(unit_amounts, quantities)
def test_per_unit_amount_is_the_rounded_product(unit: Decimal, q: Decimal) -> None:
    """A per-unit line is unit amount x quantity rounded half up, computed without Decimal."""
    exact = Fraction(unit) * Fraction(q)
    assert price_line(PerUnitPrice(USD, unit), q).amount == math.floor(exact + Fraction(1, 2))


@given(
    st.lists(st.integers(min_value=-1000, max_value=10**6), min_size=0, max_size=4),
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=3),
    st.decimals(min_value=0, max_value=30, places=2, allow_nan=False),
)
def test_invoice_totals_are_consistent(
    usages: list[int], credits: list[int], rate: Decimal
) -> None:
    """total = taxable + tax, taxable = subtotal - credits used, and nothing goes negative."""
    month = calendar_month(_JAN)
    items = tuple(UsageItem(f"m{i}", D(n), PerUnitPrice(USD, D(1))) for i, n in enumerate(usages))
    invoice = simulate_invoice(
        InvoiceRequest(
            "c", month, items, USD, credits=tuple(Credit(c) for c in credits), tax_rate=rate
        )
    )
    assert invoice.subtotal == sum(max(n, 0) for n in usages)
    assert invoice.taxable == invoice.subtotal - invoice.credit_total >= 0
    assert invoice.credit_total == min(sum(credits), invoice.subtotal)
    assert invoice.total == invoice.taxable + invoice.tax
    assert invoice.tax >= 0
