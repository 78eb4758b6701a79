"""Read a Stripe Price object, as the API returns it in JSON, into a price value.

Tiered prices carry ``tiers`` only when the request expanded them (``expand[]=tiers``); a tiered
price without them is refused rather than priced as free. Legacy Plan objects
(``object: "plan"``, with ``amount``/``amount_decimal``/``transform_usage``) are read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

from stripemeter.domain.pricing.currencies import currency, whole_minor_units
from stripemeter.domain.pricing.errors import InvalidPrice, PricingError, UnsupportedPrice
from stripemeter.domain.pricing.prices import (
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    Price,
    Tier,
    TieredPrice,
    TiersMode,
)


def price_from_stripe(obj: Mapping[str, object]) -> Price:
    """The price value for a Stripe Price (or legacy Plan) JSON object."""
    if not isinstance(obj, Mapping):
        raise InvalidPrice("a Stripe price must be a JSON object")
    kind = obj.get("object", "price")
    if kind not in ("price", "plan"):
        raise InvalidPrice(f"expected a Stripe price, got object={kind!r}", param="object")
    plan = kind == "plan"
    unit_key, decimal_key = (
        ("amount", "amount_decimal") if plan else ("unit_amount", "unit_amount_decimal")
    )
    transform_key = "transform_usage" if plan else "transform_quantity"
    try:
        cur = currency(_required(obj, "currency"))  # type: ignore[arg-type]
    except PricingError as exc:
        raise InvalidPrice(exc.message, param="currency") from None
    scheme = obj.get("billing_scheme", "per_unit")
    transform = obj.get(transform_key)

    if scheme == "tiered":
        if transform is not None:
            raise InvalidPrice(
                f"{transform_key} cannot be combined with tiers", param=transform_key
            )
        mode = obj.get("tiers_mode")
        if mode not in ("graduated", "volume"):
            raise InvalidPrice(
                f"tiers_mode must be 'graduated' or 'volume', got {mode!r}", param="tiers_mode"
            )
        tiers = obj.get("tiers")
        if not isinstance(tiers, Sequence) or isinstance(tiers, str | bytes):
            raise InvalidPrice(
                "a tiered price needs its tiers; retrieve it with expand[]=tiers", param="tiers"
            )
        return TieredPrice(
            currency=cur,
            tiers_mode=TiersMode(mode),
            tiers=tuple(_tier(tier, f"tiers[{i}]", cur.code) for i, tier in enumerate(tiers)),
        )
    if scheme != "per_unit":
        raise InvalidPrice(
            f"billing_scheme must be 'per_unit' or 'tiered', got {scheme!r}", param="billing_scheme"
        )
    unit = _amount(obj, unit_key, decimal_key, "")
    if unit is None:
        if isinstance(obj.get("custom_unit_amount"), Mapping) and any(
            v is not None
            for v in obj["custom_unit_amount"].values()  # type: ignore[attr-defined]
        ):
            raise UnsupportedPrice(
                "prices with a customer-chosen amount cannot be metered", param="custom_unit_amount"
            )
        raise InvalidPrice(f"a per-unit price needs {unit_key} or {decimal_key}", param=decimal_key)
    if transform is None:
        return PerUnitPrice(currency=cur, unit_amount_decimal=unit)
    if not isinstance(transform, Mapping):
        raise InvalidPrice(f"{transform_key} must be an object", param=transform_key)
    divide_by = transform.get("divide_by")
    if isinstance(divide_by, bool) or not isinstance(divide_by, int) or divide_by < 1:
        raise InvalidPrice(
            f"{transform_key}.divide_by must be a positive integer, got {divide_by!r}",
            param=f"{transform_key}.divide_by",
        )
    rounding = transform.get("round")
    if rounding not in ("up", "down"):
        raise InvalidPrice(
            f"{transform_key}.round must be 'up' or 'down', got {rounding!r}",
            param=f"{transform_key}.round",
        )
    return PackagePrice(
        currency=cur,
        unit_amount_decimal=unit,
        divide_by=divide_by,
        round=PackageRounding(rounding),
    )


def _tier(obj: object, path: str, code: str) -> Tier:
    if not isinstance(obj, Mapping):
        raise InvalidPrice(f"{path} must be an object", param=path)
    up_to = obj.get("up_to")
    if up_to == "inf":
        up_to = None
    if up_to is not None and (isinstance(up_to, bool) or not isinstance(up_to, int)):
        raise InvalidPrice(f"{path}.up_to must be an integer, 'inf' or null", param=f"{path}.up_to")
    unit = _amount(obj, "unit_amount", "unit_amount_decimal", f"{path}.")
    flat = _amount(obj, "flat_amount", "flat_amount_decimal", f"{path}.")
    flat_minor = 0
    if flat is not None:
        flat_minor = _whole(flat, code, f"{path}.flat_amount_decimal")
    try:
        return Tier(up_to=up_to, unit_amount_decimal=unit or Decimal(0), flat_amount=flat_minor)
    except InvalidPrice as exc:
        raise InvalidPrice(exc.message, param=f"{path}.{exc.param}") from None


def _whole(value: Decimal, code: str, param: str) -> int:
    try:
        return whole_minor_units(value, currency(code), param=param)
    except PricingError as exc:
        raise InvalidPrice(exc.message, param=param) from None


def _amount(obj: Mapping[str, object], int_key: str, decimal_key: str, path: str) -> Decimal | None:
    """The amount from ``decimal_key`` (preferred: it keeps sub-unit digits) or ``int_key``."""
    whole = obj.get(int_key)
    text = obj.get(decimal_key)
    if whole is not None and (isinstance(whole, bool) or not isinstance(whole, int)):
        raise InvalidPrice(f"{path}{int_key} must be an integer", param=f"{path}{int_key}")
    if text is None:
        return None if whole is None else Decimal(whole)
    if not isinstance(text, str | int | Decimal) or isinstance(text, bool):
        raise InvalidPrice(
            f"{path}{decimal_key} must be a decimal string", param=f"{path}{decimal_key}"
        )
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidPrice(
            f"{path}{decimal_key} is not a decimal number: {text!r}", param=f"{path}{decimal_key}"
        ) from None
    if not value.is_finite():
        raise InvalidPrice(f"{path}{decimal_key} must be finite", param=f"{path}{decimal_key}")
    if whole is not None and Decimal(whole) != value:
        raise InvalidPrice(
            f"{path}{int_key}={whole} disagrees with {path}{decimal_key}={text!r}",
            param=f"{path}{decimal_key}",
        )
    return value


def _required(obj: Mapping[str, object], key: str) -> object:
    if obj.get(key) is None:
        raise InvalidPrice(f"{key} is required", param=key)
    return obj[key]
