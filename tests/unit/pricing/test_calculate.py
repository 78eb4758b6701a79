"""Line amounts worked by hand, including the examples in Stripe's own documentation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripemeter.domain.pricing import (
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    PricingError,
    Tier,
    TieredPrice,
    TiersMode,
    currency,
    price_line,
)

D = Decimal
USD = currency("usd")
JPY = currency("jpy")

# https://stripe.com/docs/billing/subscriptions/tiers: $5 up to 5, $4 to 10, $3 to 15, $2 to 20, $1 after.
STRIPE_TIERS = (
    Tier(5, D(500)),
    Tier(10, D(400)),
    Tier(15, D(300)),
    Tier(20, D(200)),
    Tier(None, D(100)),
)
# https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing (Typographic): 7, 6.5, 6 USD.
TYPOGRAPHIC_TIERS = (Tier(5, D(700)), Tier(10, D(650)), Tier(None, D(600)))


def graduated(*tiers: Tier) -> TieredPrice:
    return TieredPrice(USD, TiersMode.GRADUATED, tiers)


def volume(*tiers: Tier) -> TieredPrice:
    return TieredPrice(USD, TiersMode.VOLUME, tiers)


class TestStripeDocumentedTiers:
    @pytest.mark.parametrize(
        ("quantity", "cents"), [(1, 500), (5, 2500), (6, 2400), (20, 4000), (25, 2500)]
    )
    def test_volume_table(self, quantity: int, cents: int) -> None:
        """Volume pricing reproduces Stripe's table: 6 x $4 = $24, 20 x $2 = $40, 25 x $1 = $25."""
        assert price_line(volume(*STRIPE_TIERS), quantity).amount == cents

    def test_graduated_six_is_twenty_nine_dollars(self) -> None:
        """Graduated 6 units is Stripe's $29: 5 x $5 in the first tier plus 1 x $4 in the second."""
        line = price_line(graduated(*STRIPE_TIERS), 6)
        assert line.amount == 5 * 500 + 1 * 400 == 2900
        assert [(p.index, p.quantity, p.amount) for p in line.parts] == [
            (0, D(5), D(2500)),
            (1, D(1), D(400)),
        ]

    @pytest.mark.parametrize(
        ("quantity", "cents"),
        [
            (1, 500),
            (5, 2500),
            (20, 5 * 500 + 5 * 400 + 5 * 300 + 5 * 200),  # $70
            (25, 5 * 500 + 5 * 400 + 5 * 300 + 5 * 200 + 5 * 100),  # $75
        ],
    )
    def test_graduated_more_quantities(self, quantity: int, cents: int) -> None:
        """Graduated totals for Stripe's tiers, each tier's units at its own price."""
        assert price_line(graduated(*STRIPE_TIERS), quantity).amount == cents

    @pytest.mark.parametrize(
        ("quantity", "cents"), [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)]
    )
    def test_typographic_volume_table(self, quantity: int, cents: int) -> None:
        """Stripe's Typographic volume table: 5 fonts 35 USD, 6 fonts 39 USD, 25 fonts 150 USD."""
        assert price_line(volume(*TYPOGRAPHIC_TIERS), quantity).amount == cents

    @pytest.mark.parametrize(
        ("quantity", "cents"),
        [
            (5, 5 * 700),  # 35.00, as Stripe says for 5 fonts
            (6, 5 * 700 + 650),  # 41.50
            (20, 5 * 700 + 5 * 650 + 10 * 600),  # 127.50
            (25, 5 * 700 + 5 * 650 + 15 * 600),  # 157.50
        ],
    )
    def test_typographic_graduated(self, quantity: int, cents: int) -> None:
        """Typographic's tiers priced graduated, worked by hand tier by tier."""
        assert price_line(graduated(*TYPOGRAPHIC_TIERS), quantity).amount == cents


class TestBoundaries:
    TIERS = (Tier(100, D(100)), Tier(None, D(50)))

    def test_graduated_exactly_at_up_to_stays_in_the_tier(self) -> None:
        """A quantity equal to ``up_to`` is priced entirely in that tier."""
        line = price_line(graduated(*self.TIERS), 100)
        assert line.amount == 100 * 100
        assert len(line.parts) == 1

    def test_graduated_one_above_up_to_spills_one_unit(self) -> None:
        """One unit above ``up_to`` is the only unit priced in the next tier."""
        assert price_line(graduated(*self.TIERS), 101).amount == 100 * 100 + 50

    def test_volume_exactly_at_up_to_uses_that_tier(self) -> None:
        """Volume at exactly ``up_to`` prices every unit at that tier."""
        assert price_line(volume(*self.TIERS), 100).amount == 100 * 100

    def test_volume_one_above_up_to_reprices_everything(self) -> None:
        """Volume one unit past ``up_to`` prices all units at the next tier."""
        assert price_line(volume(*self.TIERS), 101).amount == 101 * 50

    def test_graduated_fractional_quantity_splits_at_the_boundary(self) -> None:
        """100.5 units are 100 in the first tier and 0.5 in the second: 10000 + 25 cents."""
        line = price_line(graduated(*self.TIERS), D("100.5"))
        assert [p.quantity for p in line.parts] == [D(100), D("0.5")]
        assert line.amount == 10025

    def test_volume_fractional_quantity_above_up_to(self) -> None:
        """100.5 units in volume mode are all priced at the second tier: 100.5 x 50 = 5025."""
        assert price_line(volume(*self.TIERS), D("100.5")).amount == 5025


class TestZeroUsageAndFlatFees:
    def test_zero_usage_without_flat_fees_costs_nothing(self) -> None:
        """Zero units cost zero in every model without flat amounts."""
        for price in (graduated(*STRIPE_TIERS), volume(*STRIPE_TIERS), PerUnitPrice(USD, D(7))):
            assert price_line(price, 0).amount == 0

    def test_graduated_first_tier_flat_fee_is_charged_at_zero(self) -> None:
        """The first tier's flat amount is owed even at zero usage; later tiers' are not."""
        price = graduated(Tier(10, D(0), flat_amount=2000), Tier(None, D(10), flat_amount=500))
        line = price_line(price, 0)
        assert line.amount == 2000
        assert [p.index for p in line.parts] == [0]

    def test_graduated_flat_fee_of_a_tier_is_charged_once_it_is_reached(self) -> None:
        """At 10 units only the first flat fee applies; at 11 the second tier's fee joins in."""
        price = graduated(Tier(10, D(0), flat_amount=2000), Tier(None, D(10), flat_amount=500))
        assert price_line(price, 10).amount == 2000
        assert price_line(price, 11).amount == 2000 + 1 * 10 + 500

    def test_volume_flat_fee_of_the_selected_tier(self) -> None:
        """Volume adds only the selected tier's flat amount: 11 x 50 + 2000 = 2550."""
        price = volume(Tier(10, D(100), flat_amount=1000), Tier(None, D(50), flat_amount=2000))
        assert price_line(price, 10).amount == 10 * 100 + 1000
        assert price_line(price, 11).amount == 11 * 50 + 2000
        assert price_line(price, 0).amount == 1000

    def test_original_products_graduated_example(self) -> None:
        """1,500 units at [100: $10 + $0.50, 1000: $50 + $0.30, inf: $100 + $0.20] cost $580."""
        price = graduated(
            Tier(100, D(50), flat_amount=1000),
            Tier(1000, D(30), flat_amount=5000),
            Tier(None, D(20), flat_amount=10000),
        )
        # (1000 + 100 x 50) + (5000 + 900 x 30) + (10000 + 500 x 20) = 6000 + 32000 + 20000
        assert price_line(price, 1500).amount == 58000


class TestPerUnitAndPackage:
    def test_sub_cent_unit_amount_rounds_once_per_line(self) -> None:
        """Stripe's example: 0.05 cent x 30 = 1.5 cents, charged as 2 cents."""
        line = price_line(PerUnitPrice(USD, D("0.05")), 30)
        assert line.exact_amount == D("1.5")
        assert line.amount == 2
        assert line.rounding == D("0.5")

    def test_half_a_minor_unit_rounds_away_from_zero(self) -> None:
        """0.05 cent x 10 = 0.5 cent is charged as 1 cent (halves round up, not to even)."""
        assert price_line(PerUnitPrice(USD, D("0.05")), 10).amount == 1

    def test_unit_amount_decimal_with_fraction_of_a_cent(self) -> None:
        """105.5 cents ($1.055) x 3 = 316.5 cents, charged as 317."""
        assert price_line(PerUnitPrice(USD, D("105.5")), 3).amount == 317

    def test_tiny_price_below_half_a_cent_rounds_to_zero(self) -> None:
        """0.0001 cent x 4,000 = 0.4 cent, which rounds to 0."""
        assert price_line(PerUnitPrice(USD, D("0.0001")), 4000).amount == 0

    def test_fractional_quantity_per_unit(self) -> None:
        """2.5 GB at 199 cents per GB is 497.5 cents, charged as 498."""
        assert price_line(PerUnitPrice(USD, D(199)), D("2.5")).amount == 498

    def test_zero_decimal_currency_prices_in_whole_yen(self) -> None:
        """JPY has no minor unit: 1,001 calls at 3 yen are 3,003 yen, and 0.5 yen x 3 is 2 yen."""
        assert price_line(PerUnitPrice(JPY, D(3)), 1001).amount == 3003
        assert price_line(PerUnitPrice(JPY, D("0.5")), 3).amount == 2

    @pytest.mark.parametrize(
        ("users", "cents"), [(0, 0), (1, 1000), (5, 1000), (6, 2000), (7, 2000)]
    )
    def test_package_rounds_up(self, users: int, cents: int) -> None:
        """Stripe's "$10 per 5 users (or portion thereof)": 6 users are 2 packages, $20."""
        price = PackagePrice(USD, D(1000), divide_by=5, round=PackageRounding.UP)
        assert price_line(price, users).amount == cents

    def test_package_car_rental_hours(self) -> None:
        """Stripe's car rental: 150 minutes at 10 USD per started hour is 3 hours, 30 USD."""
        price = PackagePrice(USD, D(1000), divide_by=60, round=PackageRounding.UP)
        line = price_line(price, 150)
        assert line.parts[0].quantity == 3
        assert line.amount == 3000

    def test_package_rounds_down(self) -> None:
        """Rounding down bills only full packages: 150 minutes are 2 full hours, 20 USD."""
        price = PackagePrice(USD, D(1000), divide_by=60, round=PackageRounding.DOWN)
        assert price_line(price, 150).amount == 2000
        assert price_line(price, 59).amount == 0

    def test_package_of_a_fractional_quantity(self) -> None:
        """10.5 units in packages of 5 are 3 packages rounding up and 2 rounding down."""
        up = PackagePrice(USD, D(100), divide_by=5, round=PackageRounding.UP)
        down = PackagePrice(USD, D(100), divide_by=5, round=PackageRounding.DOWN)
        assert price_line(up, D("10.5")).amount == 300
        assert price_line(down, D("10.5")).amount == 200


class TestInvalidQuantities:
    @pytest.mark.parametrize("quantity", [D(-1), D("NaN"), D("Infinity")])
    def test_negative_or_non_finite_quantity_is_refused(self, quantity: Decimal) -> None:
        """A line cannot be priced for a negative or non-finite quantity."""
        with pytest.raises(PricingError) as caught:
            price_line(PerUnitPrice(USD, D(1)), quantity)
        assert caught.value.param == "quantity"

    def test_float_quantity_is_refused(self) -> None:
        """Floats are refused so that no binary rounding error reaches a price."""
        with pytest.raises(PricingError):
            price_line(PerUnitPrice(USD, D(1)), 0.1)  # type: ignore[arg-type]
