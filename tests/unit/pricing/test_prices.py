"""Price values refuse what Stripe refuses, and Stripe's JSON reads into them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripemeter.domain.pricing import (
    InvalidPrice,
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    Tier,
    TieredPrice,
    TiersMode,
    UnsupportedPrice,
    currency,
    price_from_stripe,
)

D = Decimal
USD = currency("usd")


class TestValidation:
    def test_unit_amount_is_reported_only_when_whole(self) -> None:
        """Like Stripe, ``unit_amount`` is None when the price has a fraction of a minor unit."""
        assert PerUnitPrice(USD, D(5)).unit_amount == 5
        assert PerUnitPrice(USD, D("0.05")).unit_amount is None

    def test_more_than_twelve_decimal_places_is_refused(self) -> None:
        """``unit_amount_decimal`` may have at most 12 decimal places."""
        PerUnitPrice(USD, D("0.000000000001"))
        with pytest.raises(InvalidPrice):
            PerUnitPrice(USD, D("0.0000000000001"))

    def test_negative_unit_amount_is_refused(self) -> None:
        """Unit amounts cannot be negative."""
        with pytest.raises(InvalidPrice):
            PerUnitPrice(USD, D(-1))

    def test_divide_by_must_be_positive(self) -> None:
        """A package of zero units is refused."""
        with pytest.raises(InvalidPrice):
            PackagePrice(USD, D(100), divide_by=0)

    def test_last_tier_must_be_open_ended(self) -> None:
        """The last tier must have ``up_to=inf``."""
        with pytest.raises(InvalidPrice) as caught:
            TieredPrice(USD, TiersMode.VOLUME, (Tier(5, D(1)), Tier(10, D(1))))
        assert caught.value.param == "tiers[1].up_to"

    def test_only_the_last_tier_may_be_open_ended(self) -> None:
        """An ``inf`` tier before the end is refused."""
        with pytest.raises(InvalidPrice) as caught:
            TieredPrice(USD, TiersMode.VOLUME, (Tier(None, D(1)), Tier(None, D(1))))
        assert caught.value.param == "tiers[0].up_to"

    def test_up_to_must_increase(self) -> None:
        """Tiers must be in ascending ``up_to`` order."""
        with pytest.raises(InvalidPrice) as caught:
            TieredPrice(USD, TiersMode.GRADUATED, (Tier(10, D(1)), Tier(10, D(1)), Tier(None)))
        assert caught.value.param == "tiers[1].up_to"

    def test_tiers_must_not_be_empty(self) -> None:
        """A tiered price needs at least one tier."""
        with pytest.raises(InvalidPrice):
            TieredPrice(USD, TiersMode.GRADUATED, ())


class TestPriceFromStripe:
    def test_per_unit_price_as_the_api_returns_it(self) -> None:
        """A per-unit Price object (fixture shape) reads into a per-unit price."""
        price = price_from_stripe(
            {
                "object": "price",
                "billing_scheme": "per_unit",
                "currency": "usd",
                "custom_unit_amount": {"maximum": None, "minimum": None, "preset": None},
                "tiers_mode": None,
                "transform_quantity": None,
                "unit_amount": 2000,
                "unit_amount_decimal": "2000",
            }
        )
        assert price == PerUnitPrice(USD, D(2000))

    def test_sub_cent_price_keeps_its_decimal_digits(self) -> None:
        """``unit_amount`` null with ``unit_amount_decimal`` "0.05" is a 0.05-cent price."""
        price = price_from_stripe(
            {"currency": "usd", "billing_scheme": "per_unit", "unit_amount": None,
             "unit_amount_decimal": "0.05"}
        )  # fmt: skip
        assert price == PerUnitPrice(USD, D("0.05"))

    def test_transform_quantity_makes_a_package_price(self) -> None:
        """``transform_quantity`` {divide_by, round} reads into a package price."""
        price = price_from_stripe(
            {"currency": "usd", "billing_scheme": "per_unit", "unit_amount": 1000,
             "transform_quantity": {"divide_by": 5, "round": "down"}}
        )  # fmt: skip
        assert price == PackagePrice(USD, D(1000), 5, PackageRounding.DOWN)

    def test_tiered_price_with_inf_and_null_up_to(self) -> None:
        """Tiers read ``up_to`` null or "inf" as open-ended and prefer the decimal fields."""
        price = price_from_stripe(
            {
                "currency": "eur",
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": [
                    {"up_to": 5, "unit_amount": 500, "unit_amount_decimal": "500",
                     "flat_amount": 100, "flat_amount_decimal": "100"},
                    {"up_to": None, "unit_amount": None, "unit_amount_decimal": "0.25",
                     "flat_amount": None, "flat_amount_decimal": None},
                ],
            }
        )  # fmt: skip
        assert price == TieredPrice(
            currency("eur"),
            TiersMode.GRADUATED,
            (Tier(5, D(500), 100), Tier(None, D("0.25"), 0)),
        )
        assert price_from_stripe(
            {"currency": "eur", "billing_scheme": "tiered", "tiers_mode": "volume",
             "tiers": [{"up_to": "inf", "unit_amount": 1}]}
        ) == TieredPrice(currency("eur"), TiersMode.VOLUME, (Tier(None, D(1)),))  # fmt: skip

    def test_legacy_plan_object(self) -> None:
        """A legacy Plan reads ``amount_decimal`` and ``transform_usage``."""
        price = price_from_stripe(
            {"object": "plan", "currency": "usd", "billing_scheme": "per_unit", "amount": 300,
             "amount_decimal": "300", "transform_usage": {"divide_by": 10, "round": "up"}}
        )  # fmt: skip
        assert price == PackagePrice(USD, D(300), 10, PackageRounding.UP)

    @pytest.mark.parametrize(
        ("obj", "param"),
        [
            ({"billing_scheme": "per_unit", "unit_amount": 1}, "currency"),
            ({"currency": "usd", "billing_scheme": "per_unit"}, "unit_amount_decimal"),
            ({"currency": "usd", "billing_scheme": "tiered", "tiers_mode": "volume"}, "tiers"),
            ({"currency": "usd", "billing_scheme": "tiered", "tiers": []}, "tiers_mode"),
            ({"currency": "usd", "billing_scheme": "weird", "unit_amount": 1}, "billing_scheme"),
            ({"currency": "usd", "unit_amount": 1, "unit_amount_decimal": "2"},
             "unit_amount_decimal"),
            ({"currency": "usd", "unit_amount_decimal": "abc"}, "unit_amount_decimal"),
            ({"currency": "usd", "unit_amount": 1,
              "transform_quantity": {"divide_by": 0, "round": "up"}},
             "transform_quantity.divide_by"),
            ({"currency": "usd", "unit_amount": 1,
              "transform_quantity": {"divide_by": 2, "round": "nearest"}},
             "transform_quantity.round"),
            ({"currency": "usd", "billing_scheme": "tiered", "tiers_mode": "volume",
              "transform_quantity": {"divide_by": 2, "round": "up"}, "tiers": []},
             "transform_quantity"),
            ({"currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
              "tiers": [{"up_to": 5, "unit_amount": 1}, {"up_to": None, "flat_amount_decimal": "1.5"}]},
             "tiers[1].flat_amount_decimal"),
            ({"currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
              "tiers": [{"up_to": 0, "unit_amount": 1}, {"up_to": None}]},
             "tiers[0].up_to"),
            ({"object": "invoice", "currency": "usd"}, "object"),
        ],
    )  # fmt: skip
    def test_invalid_prices_name_the_field(self, obj: dict[str, object], param: str) -> None:
        """Each broken Stripe price is refused with the offending field named."""
        with pytest.raises(InvalidPrice) as caught:
            price_from_stripe(obj)
        assert caught.value.param == param

    def test_customer_chosen_amount_is_unsupported(self) -> None:
        """Pay-what-you-want prices cannot be metered and are refused as unsupported."""
        with pytest.raises(UnsupportedPrice):
            price_from_stripe(
                {"currency": "usd", "billing_scheme": "per_unit", "unit_amount": None,
                 "custom_unit_amount": {"maximum": None, "minimum": 500, "preset": None}}
            )  # fmt: skip
