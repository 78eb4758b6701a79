"""Read the original product's simulator input (camelCase, major-unit prices) into typed values.

Shape: ``{customerId, periodStart, periodEnd, usageItems: [{metric, quantity, priceConfig}],
commitments?, credits?, taxRate?}``, with ``priceConfig = {model, currency, tiers?: [{upTo,
unitPrice, flatPrice?}], unitPrice?, packageSize?, minimumCharge?, maximumCharge?}``.

Models become Stripe prices: ``tiered`` and ``graduated`` → graduated tiers, ``volume`` → volume
tiers, ``flat`` → per-unit, ``package`` → per-unit with ``transform_quantity`` (rounded up unless
``round: "down"``). Where the original was unsound this reader refuses instead of guessing: an
unknown model, ``upTo: 0``, a last tier that is not open-ended, mixed currencies, and amounts with
more digits than the currency's minor unit are errors. ``flatPrice`` counts in every tiered model.
A ``minimumCharge`` or ``maximumCharge`` of 0 means "none", as it did in the original.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from stripemeter.domain.periods import Period
from stripemeter.domain.pricing.adjustments import ChargeLimits, Commitment, Credit
from stripemeter.domain.pricing.currencies import (
    Currency,
    currency,
    to_minor_units,
    whole_minor_units,
)
from stripemeter.domain.pricing.errors import CurrencyMismatch, PricingError
from stripemeter.domain.pricing.invoices import InvoiceRequest, UsageItem
from stripemeter.domain.pricing.prices import (
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    Price,
    Tier,
    TieredPrice,
    TiersMode,
)
from stripemeter.domain.quantities import QuantityError, parse_quantity
from stripemeter.domain.times import TimeError, parse_event_time

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIERED_MODELS = {
    "tiered": TiersMode.GRADUATED,
    "graduated": TiersMode.GRADUATED,
    "volume": TiersMode.VOLUME,
}
_T = TypeVar("_T")
MODELS = ("tiered", "graduated", "volume", "flat", "package")


def invoice_request_from_legacy(data: Mapping[str, object]) -> InvoiceRequest:
    """The typed invoice request for the original simulator's input dict."""
    if not isinstance(data, Mapping):
        raise PricingError("the simulation input must be an object")
    customer_id = data.get("customerId")
    if not isinstance(customer_id, str) or not customer_id:
        raise PricingError("customerId must be a non-empty string", param="customerId")
    period = Period(_instant(data, "periodStart"), _instant(data, "periodEnd"))
    items_data = _list(data, "usageItems", required=True)
    items: list[UsageItem] = []
    invoice_currency: Currency | None = None
    for index, item in enumerate(items_data):
        path = f"usageItems[{index}]"
        usage = _object(item, path)
        metric = usage.get("metric")
        if not isinstance(metric, str) or not metric:
            raise PricingError(f"{path}.metric must be a non-empty string", param=f"{path}.metric")
        quantity = _number(usage.get("quantity"), f"{path}.quantity")
        price, limits = _price(_object(usage.get("priceConfig"), f"{path}.priceConfig"), path)
        if invoice_currency is None:
            invoice_currency = price.currency
        elif price.currency != invoice_currency:
            raise CurrencyMismatch(
                f"{path} is priced in {price.currency.code.upper()}, "
                f"earlier items in {invoice_currency.code.upper()}",
                param=f"{path}.priceConfig.currency",
            )
        items.append(UsageItem(metric, quantity, price, limits))
    cur = invoice_currency or _currency(data.get("currency", "usd"), "currency")
    return InvoiceRequest(
        customer_id=customer_id,
        period=period,
        items=tuple(items),
        currency=cur,
        commitments=tuple(
            _commitment(_object(c, f"commitments[{i}]"), f"commitments[{i}]", cur)
            for i, c in enumerate(_list(data, "commitments"))
        ),
        credits=tuple(
            _credit(_object(c, f"credits[{i}]"), f"credits[{i}]", cur)
            for i, c in enumerate(_list(data, "credits"))
        ),
        tax_rate=_number(data.get("taxRate", 0), "taxRate"),
    )


def price_from_legacy(config: Mapping[str, object]) -> tuple[Price, ChargeLimits]:
    """The Stripe price and line limits for one original ``priceConfig``."""
    return _price(_object(config, "priceConfig"), "")


def _price(config: Mapping[str, object], item_path: str) -> tuple[Price, ChargeLimits]:
    path = f"{item_path}.priceConfig" if item_path else "priceConfig"
    cur = _currency(config.get("currency"), f"{path}.currency")
    model = config.get("model")
    price: Price
    if model in _TIERED_MODELS:
        tiers_data = _list(config, "tiers", required=True, path=path)
        tiers = tuple(
            _tier(_object(t, f"{path}.tiers[{i}]"), f"{path}.tiers[{i}]", cur)
            for i, t in enumerate(tiers_data)
        )
        if tiers and tiers[-1].up_to is not None:
            raise PricingError(
                "the last tier must be open-ended (upTo: null)",
                param=f"{path}.tiers[{len(tiers) - 1}].upTo",
            )
        price = _checked(lambda: TieredPrice(cur, _TIERED_MODELS[str(model)], tiers), path)
    elif model in ("flat", "package"):
        unit = _unit_price(config.get("unitPrice"), f"{path}.unitPrice", cur)
        if model == "flat":
            price = _checked(lambda: PerUnitPrice(cur, unit), path)
        else:
            size = _number(config.get("packageSize", 1), f"{path}.packageSize")
            if size != size.to_integral_value() or size < 1:
                raise PricingError(
                    f"{path}.packageSize must be a positive integer, got {size}",
                    param=f"{path}.packageSize",
                )
            rounding = config.get("round", "up")
            if rounding not in ("up", "down"):
                raise PricingError(f"{path}.round must be 'up' or 'down'", param=f"{path}.round")
            price = _checked(
                lambda: PackagePrice(cur, unit, int(size), PackageRounding(str(rounding))), path
            )
    else:
        raise PricingError(
            f"{path}.model must be one of {', '.join(MODELS)}, got {model!r}", param=f"{path}.model"
        )
    minimum = _limit(config, "minimumCharge", path, cur)
    maximum = _limit(config, "maximumCharge", path, cur)
    limits = _checked(lambda: ChargeLimits(minimum, maximum), path)
    return price, limits


def _tier(data: Mapping[str, object], path: str, cur: Currency) -> Tier:
    raw_up_to = data.get("upTo")
    up_to: int | None = None
    if raw_up_to is not None:
        bound = _number(raw_up_to, f"{path}.upTo")
        if bound != bound.to_integral_value() or bound < 1:
            # The original read upTo: 0 as "no limit"; Stripe wants a positive whole number.
            raise PricingError(
                f"{path}.upTo must be a positive integer or null, got {raw_up_to!r}",
                param=f"{path}.upTo",
            )
        up_to = int(bound)
    unit = _unit_price(data.get("unitPrice", 0), f"{path}.unitPrice", cur)
    flat = _money(data.get("flatPrice", 0), f"{path}.flatPrice", cur)
    return _checked(lambda: Tier(up_to, unit, flat), path)


def _limit(config: Mapping[str, object], key: str, path: str, cur: Currency) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    amount = _money(value, f"{path}.{key}", cur)
    return amount or None


def _commitment(data: Mapping[str, object], path: str, cur: Currency) -> Commitment:
    term = Period(_instant(data, "startDate", path), _instant(data, "endDate", path))
    if term.end <= term.start:
        raise PricingError(f"{path}.endDate must be after startDate", param=f"{path}.endDate")
    return Commitment(
        amount=_money(data.get("amount"), f"{path}.amount", cur),
        term=term,
        applied=_money(data.get("applied", 0), f"{path}.applied", cur),
    )


def _credit(data: Mapping[str, object], path: str, cur: Currency) -> Credit:
    reason = data.get("reason", "")
    expires = data.get("expiresAt")
    return Credit(
        amount=_money(data.get("amount"), f"{path}.amount", cur),
        reason=reason if isinstance(reason, str) else str(reason),
        expires_at=None if expires is None else _instant(data, "expiresAt", path),
    )


def _unit_price(value: object, param: str, cur: Currency) -> Decimal:
    return to_minor_units(_number(value, param), cur)


def _money(value: object, param: str, cur: Currency) -> int:
    amount = whole_minor_units(to_minor_units(_number(value, param), cur), cur, param=param)
    if amount < 0:
        raise PricingError(f"{param} must not be negative", param=param)
    return amount


def _number(value: object, param: str) -> Decimal:
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise PricingError(f"{param} {exc}", param=param) from None


def _currency(value: object, param: str) -> Currency:
    try:
        return currency(value)  # type: ignore[arg-type]
    except PricingError as exc:
        raise PricingError(exc.message, param=param) from None


def _instant(data: Mapping[str, object], key: str, path: str = "") -> datetime:
    param = f"{path}.{key}" if path else key
    value = data.get(key)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and _DATE.match(value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            raise PricingError(f"{param} is not a valid date: {value!r}", param=param) from None
    try:
        return parse_event_time(value).at
    except TimeError as exc:
        raise PricingError(f"{param} must be a date (YYYY-MM-DD) or {exc}", param=param) from None


def _object(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise PricingError(f"{path} must be an object", param=path)
    return value


def _list(
    data: Mapping[str, object], key: str, *, required: bool = False, path: str = ""
) -> Sequence[object]:
    param = f"{path}.{key}" if path else key
    value = data.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise PricingError(f"{param} must be a list", param=param)
    return value


def _checked(build: Callable[[], _T], path: str) -> _T:
    try:
        return build()
    except PricingError as exc:
        raise type(exc)(exc.message, param=f"{path}.{exc.param}" if exc.param else path) from None
