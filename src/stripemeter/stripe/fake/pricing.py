"""Price a quantity with a Stripe price (per-unit, package, graduated or volume tiers).

Temporary: ``stripemeter.domain.pricing`` will replace this module.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from stripemeter.stripe.fake.types import JSONObject

ZERO = Decimal(0)


def _decimal(obj: JSONObject, name: str) -> Decimal:
    """Read ``<name>_decimal`` (exact) or fall back to the integer ``<name>``."""
    exact = obj.get(f"{name}_decimal")
    if exact is not None:
        return Decimal(str(exact))
    whole = obj.get(name)
    return Decimal(whole) if whole is not None else ZERO


def price_amount(price: JSONObject, quantity: Decimal) -> Decimal:
    """Return the unrounded amount in minor units for ``quantity`` of ``price``; negatives bill 0."""
    if quantity <= 0:
        return ZERO
    if price.get("billing_scheme") == "tiered":
        tiers = price.get("tiers") or []
        if price.get("tiers_mode") == "volume":
            return _volume(tiers, quantity)
        return _graduated(tiers, quantity)
    transform = price.get("transform_quantity")
    if transform:
        divided = quantity / Decimal(transform["divide_by"])
        rounding = ROUND_CEILING if transform.get("round") == "up" else ROUND_FLOOR
        quantity = divided.to_integral_value(rounding=rounding)
    return quantity * _decimal(price, "unit_amount")


def _upper(tier: JSONObject) -> Decimal | None:
    up_to = tier.get("up_to")
    return None if up_to in (None, "inf") else Decimal(up_to)


def _graduated(tiers: list[JSONObject], quantity: Decimal) -> Decimal:
    total = ZERO
    lower = ZERO
    for tier in tiers:
        upper = _upper(tier)
        if quantity <= lower:
            break
        in_tier = (min(quantity, upper) if upper is not None else quantity) - lower
        total += in_tier * _decimal(tier, "unit_amount") + _decimal(tier, "flat_amount")
        if upper is None:
            break
        lower = upper
    return total


def _volume(tiers: list[JSONObject], quantity: Decimal) -> Decimal:
    for tier in tiers:
        upper = _upper(tier)
        if upper is None or quantity <= upper:
            return quantity * _decimal(tier, "unit_amount") + _decimal(tier, "flat_amount")
    return ZERO


def round_minor_units(amount: Decimal) -> int:
    """Round an amount to whole minor units, half up, as Stripe does for line items."""
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))
