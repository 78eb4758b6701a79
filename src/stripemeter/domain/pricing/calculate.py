"""Price one invoice line the way Stripe does: exact arithmetic, one rounding per line.

Rules (each from Stripe's documentation; see docs/pricing.md for the sources):

- A tier covers the quantities above the previous tier's ``up_to`` up to and including its own;
  fractional quantities split across the boundary (5.5 with ``up_to=5``: 5 in the first tier,
  0.5 in the second).
- ``graduated``: each tier prices the units that fall in it; a tier's ``flat_amount`` is charged
  once the quantity reaches the tier, and the first tier is always reached, so its flat amount is
  charged even at quantity 0 ("the flat amount for an entire tier, regardless of the number of
  units in the tier").
- ``volume``: the first tier whose ``up_to`` is at least the quantity prices every unit, plus that
  tier's ``flat_amount``; quantity 0 selects the first tier.
- package (``transform_quantity``): quantity ÷ ``divide_by`` rounded up or down to whole packages,
  times the unit amount.
- The line amount is the exact sum rounded once to the currency's minor unit, halves away from
  zero; the per-tier parts stay exact so the rounding is visible, never spread over tiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

from stripemeter.domain.pricing.currencies import Currency, round_minor_units
from stripemeter.domain.pricing.errors import PricingError
from stripemeter.domain.pricing.prices import (
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    Price,
    Tier,
    TiersMode,
)

ZERO = Decimal(0)
# Quantities have ≤ 38 digits and unit amounts ≤ 12 decimals: 100 digits keeps every product exact.
_EXACT = Context(prec=100)


@dataclass(frozen=True, slots=True)
class TierAmount:
    """One part of a line: a tier's units, prices and exact amount in minor units.

    Per-unit and package prices have a single part with ``index`` 0 and ``up_to`` None; for a
    package price ``quantity`` counts packages.
    """

    index: int
    up_to: int | None
    quantity: Decimal
    unit_amount_decimal: Decimal
    flat_amount: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class LineAmount:
    """A priced line: the quantity, its parts, the exact sum and the amount Stripe would charge."""

    currency: Currency
    quantity: Decimal
    parts: tuple[TierAmount, ...]
    exact_amount: Decimal
    amount: int

    @property
    def rounding(self) -> Decimal:
        """What rounding added to (or took from) the exact sum, in minor units."""
        return self.amount - self.exact_amount


def price_line(price: Price, quantity: Decimal | int) -> LineAmount:
    """Price ``quantity`` units: the amount in minor units and its per-tier breakdown."""
    if isinstance(quantity, bool) or not isinstance(quantity, Decimal | int):
        raise PricingError(
            f"quantity must be a Decimal or an int, got {quantity!r}", param="quantity"
        )
    quantity = Decimal(quantity)
    if not quantity.is_finite() or quantity < 0:
        raise PricingError(
            f"quantity must be finite and not negative, got {quantity}", param="quantity"
        )
    quantity += 0  # folds -0 into 0
    parts: tuple[TierAmount, ...]
    with localcontext(_EXACT):
        if isinstance(price, PerUnitPrice):
            parts = (_part(0, None, quantity, price.unit_amount_decimal, 0),)
        elif isinstance(price, PackagePrice):
            parts = (_part(0, None, packages(price, quantity), price.unit_amount_decimal, 0),)
        elif price.tiers_mode is TiersMode.GRADUATED:
            parts = _graduated(price.tiers, quantity)
        else:
            parts = _volume(price.tiers, quantity)
        exact = sum((part.amount for part in parts), ZERO)
    return LineAmount(
        currency=price.currency,
        quantity=quantity,
        parts=parts,
        exact_amount=exact,
        amount=round_minor_units(exact),
    )


def packages(price: PackagePrice, quantity: Decimal) -> Decimal:
    """Whole packages billed for ``quantity``: ``ceil`` or ``floor`` of quantity ÷ ``divide_by``."""
    with localcontext(_EXACT):
        whole, remainder = divmod(quantity, Decimal(price.divide_by))
    if remainder and price.round is PackageRounding.UP:
        whole += 1
    return whole


def _graduated(tiers: tuple[Tier, ...], quantity: Decimal) -> tuple[TierAmount, ...]:
    parts = []
    lower = ZERO
    for index, tier in enumerate(tiers):
        if index > 0 and quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, Decimal(tier.up_to))
        units = max(upper - lower, ZERO)
        parts.append(_part(index, tier.up_to, units, tier.unit_amount_decimal, tier.flat_amount))
        if tier.up_to is None:
            break
        lower = Decimal(tier.up_to)
    return tuple(parts)


def _volume(tiers: tuple[Tier, ...], quantity: Decimal) -> tuple[TierAmount, ...]:
    index, tier = next(
        (i, t) for i, t in enumerate(tiers) if t.up_to is None or quantity <= t.up_to
    )
    return (_part(index, tier.up_to, quantity, tier.unit_amount_decimal, tier.flat_amount),)


def _part(index: int, up_to: int | None, units: Decimal, unit: Decimal, flat: int) -> TierAmount:
    with localcontext(_EXACT):
        amount = units * unit + flat
    return TierAmount(
        index=index,
        up_to=up_to,
        quantity=units,
        unit_amount_decimal=unit,
        flat_amount=flat,
        amount=amount,
    )
