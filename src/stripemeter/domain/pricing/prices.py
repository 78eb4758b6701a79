"""Stripe's price models as values, with Stripe's names: per-unit, package and tiered prices.

Amounts are in the currency's minor units. ``unit_amount_decimal`` may carry up to 12 decimal
places (sub-cent prices); flat amounts are whole minor units, as Stripe requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from stripemeter.domain.pricing.currencies import Currency
from stripemeter.domain.pricing.errors import InvalidPrice

MAX_UNIT_AMOUNT_DECIMAL_PLACES = 12  # Stripe's documented limit for unit_amount_decimal


class TiersMode(StrEnum):
    """How tiers combine: each tier prices its own units, or one tier prices them all."""

    GRADUATED = "graduated"
    VOLUME = "volume"


class PackageRounding(StrEnum):
    """Stripe's ``transform_quantity.round``: whole packages after division."""

    UP = "up"
    DOWN = "down"


def check_unit_amount(value: Decimal, param: str) -> Decimal:
    """A non-negative, finite unit amount with at most 12 decimal places."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidPrice(f"{param} must be a finite Decimal, got {value!r}", param=param)
    if value < 0:
        raise InvalidPrice(f"{param} must not be negative, got {value}", param=param)
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite values have an integer exponent
    if -exponent > MAX_UNIT_AMOUNT_DECIMAL_PLACES:
        raise InvalidPrice(
            f"{param} may have at most {MAX_UNIT_AMOUNT_DECIMAL_PLACES} decimal places: {value}",
            param=param,
        )
    return value + 0  # folds -0 into 0


def _whole_unit_amount(value: Decimal) -> int | None:
    return int(value) if value == value.to_integral_value() else None


@dataclass(frozen=True, slots=True)
class PerUnitPrice:
    """``billing_scheme=per_unit``: every unit costs ``unit_amount_decimal`` minor units."""

    currency: Currency
    unit_amount_decimal: Decimal

    def __post_init__(self) -> None:
        check_unit_amount(self.unit_amount_decimal, "unit_amount_decimal")

    @property
    def unit_amount(self) -> int | None:
        """The whole-minor-unit price, or None for a sub-unit price (as Stripe reports it)."""
        return _whole_unit_amount(self.unit_amount_decimal)


@dataclass(frozen=True, slots=True)
class PackagePrice:
    """``per_unit`` with ``transform_quantity``: whole packages of ``divide_by`` units."""

    currency: Currency
    unit_amount_decimal: Decimal  # per package
    divide_by: int
    round: PackageRounding = PackageRounding.UP

    def __post_init__(self) -> None:
        check_unit_amount(self.unit_amount_decimal, "unit_amount_decimal")
        if isinstance(self.divide_by, bool) or not isinstance(self.divide_by, int):
            raise InvalidPrice("transform_quantity.divide_by must be an integer", param="divide_by")
        if self.divide_by < 1:
            raise InvalidPrice(
                f"transform_quantity.divide_by must be at least 1, got {self.divide_by}",
                param="transform_quantity.divide_by",
            )
        object.__setattr__(self, "round", PackageRounding(self.round))

    @property
    def unit_amount(self) -> int | None:
        """The whole-minor-unit price of one package, or None for a sub-unit price."""
        return _whole_unit_amount(self.unit_amount_decimal)


@dataclass(frozen=True, slots=True)
class Tier:
    """One entry of ``tiers``: units up to and including ``up_to`` (None is Stripe's ``inf``)."""

    up_to: int | None
    unit_amount_decimal: Decimal = Decimal(0)
    flat_amount: int = 0

    def __post_init__(self) -> None:
        check_unit_amount(self.unit_amount_decimal, "unit_amount_decimal")
        if isinstance(self.flat_amount, bool) or not isinstance(self.flat_amount, int):
            raise InvalidPrice("flat_amount must be an integer", param="flat_amount")
        if self.flat_amount < 0:
            raise InvalidPrice("flat_amount must not be negative", param="flat_amount")
        if self.up_to is not None and (
            isinstance(self.up_to, bool) or not isinstance(self.up_to, int) or self.up_to < 1
        ):
            raise InvalidPrice(
                f"up_to must be a positive integer or None (inf), got {self.up_to!r}",
                param="up_to",
            )

    @property
    def unit_amount(self) -> int | None:
        """The whole-minor-unit price, or None for a sub-unit price."""
        return _whole_unit_amount(self.unit_amount_decimal)


@dataclass(frozen=True, slots=True)
class TieredPrice:
    """``billing_scheme=tiered``: ascending tiers, the last one open-ended (``up_to=inf``)."""

    currency: Currency
    tiers_mode: TiersMode
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers_mode", TiersMode(self.tiers_mode))
        object.__setattr__(self, "tiers", tuple(self.tiers))
        if not self.tiers:
            raise InvalidPrice("a tiered price needs at least one tier", param="tiers")
        previous = 0
        for index, tier in enumerate(self.tiers):
            last = index == len(self.tiers) - 1
            if tier.up_to is None:
                if not last:
                    raise InvalidPrice(
                        "only the last tier may have up_to=inf", param=f"tiers[{index}].up_to"
                    )
                continue
            if last:
                raise InvalidPrice(
                    "the last tier must have up_to=inf", param=f"tiers[{index}].up_to"
                )
            if tier.up_to <= previous:
                raise InvalidPrice(
                    f"up_to must increase from tier to tier ({tier.up_to} after {previous})",
                    param=f"tiers[{index}].up_to",
                )
            previous = tier.up_to


Price = PerUnitPrice | PackagePrice | TieredPrice
