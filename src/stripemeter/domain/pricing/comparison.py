"""Compare a simulated invoice with the one a scenario expects, within stated tolerances.

Expected amounts are in major units (what people write in scenarios). An amount passes when
``|actual - expected| <= absolute`` or ``|actual - expected| <= relative * |expected|``; the
default tolerances are zero, so "to the cent" is the default. Quantities and the currency must
match exactly. Expected lines are matched by metric; lines the expectation does not name are not
checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from stripemeter.domain.pricing.errors import PricingError
from stripemeter.domain.pricing.invoices import Invoice
from stripemeter.domain.quantities import QuantityError, parse_quantity

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How far an amount may stray: ``absolute`` in major units, ``relative`` a fraction (0-1)."""

    absolute: Decimal = ZERO
    relative: Decimal = ZERO

    def __post_init__(self) -> None:
        if not self.absolute.is_finite() or self.absolute < 0:
            raise PricingError("absolute tolerance must be >= 0", param="tolerances.absolute")
        if not self.relative.is_finite() or not ZERO <= self.relative <= 1:
            raise PricingError("relative tolerance must be in [0, 1]", param="tolerances.relative")

    def accepts(self, expected: Decimal, actual: Decimal) -> bool:
        """True when ``actual`` is close enough to ``expected``."""
        gap = abs(actual - expected)
        return gap <= self.absolute or gap <= self.relative * abs(expected)


@dataclass(frozen=True, slots=True)
class ExpectedLine:
    """What one line should say; None fields are not checked."""

    metric: str
    quantity: Decimal | None = None
    amount: Decimal | None = None
    unit_price: Decimal | None = None  # amount / quantity, in major units


@dataclass(frozen=True, slots=True)
class ExpectedInvoice:
    """What the invoice should say, in major units; None fields are not checked."""

    total: Decimal
    subtotal: Decimal | None = None
    credits: Decimal | None = None
    tax: Decimal | None = None
    currency: str | None = None
    lines: tuple[ExpectedLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that did not match; ``gap`` is ``actual - expected`` for amounts."""

    field: str
    expected: object
    actual: object
    gap: Decimal | None = None

    def __str__(self) -> str:
        return f"{self.field}: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True, slots=True)
class InvoiceComparison:
    """The outcome of a comparison: every difference found."""

    differences: tuple[Difference, ...]

    @property
    def passed(self) -> bool:
        """True when nothing differed."""
        return not self.differences


def compare_invoices(
    expected: ExpectedInvoice, actual: Invoice, tolerances: Tolerances | None = None
) -> InvoiceComparison:
    """Every way ``actual`` differs from ``expected`` beyond ``tolerances`` (exact by default)."""
    tol = tolerances or Tolerances()
    found: list[Difference] = []

    def amount(field: str, want: Decimal | None, got: Decimal) -> None:
        if want is not None and not tol.accepts(want, got):
            found.append(Difference(field, want, got, got - want))

    amount("total", expected.total, actual.major(actual.total))
    amount("subtotal", expected.subtotal, actual.major(actual.subtotal))
    amount("credits", expected.credits, actual.major(actual.commitment_total + actual.credit_total))
    amount("tax", expected.tax, actual.major(actual.tax))
    if expected.currency is not None and expected.currency.lower() != actual.currency.code:
        found.append(Difference("currency", expected.currency.lower(), actual.currency.code))
    for want in expected.lines:
        field = f"lines.{want.metric}"
        try:
            line = actual.line(want.metric)
        except KeyError:
            found.append(Difference(field, "a line", None))
            continue
        if want.quantity is not None and want.quantity != line.quantity:
            found.append(
                Difference(
                    f"{field}.quantity", want.quantity, line.quantity, line.quantity - want.quantity
                )
            )
        got = actual.major(line.amount)
        amount(f"{field}.amount", want.amount, got)
        unit = got / line.quantity if line.quantity else ZERO
        amount(f"{field}.unit_price", want.unit_price, unit)
    return InvoiceComparison(tuple(found))


def expected_invoice_from_dict(data: Mapping[str, object]) -> ExpectedInvoice:
    """Read a scenario's ``expected`` block (``total``, ``subtotal``, ``lineItems``, …)."""
    if not isinstance(data, Mapping):
        raise PricingError("expected must be an object", param="expected")
    lines = data.get("lineItems", data.get("lines", ()))
    if not isinstance(lines, Sequence) or isinstance(lines, str | bytes):
        raise PricingError("expected.lineItems must be a list", param="expected.lineItems")
    read_lines = []
    for index, line in enumerate(lines):
        path = f"expected.lineItems[{index}]"
        if not isinstance(line, Mapping) or not isinstance(line.get("metric"), str):
            raise PricingError(f"{path} must be an object with a metric", param=path)
        read_lines.append(
            ExpectedLine(
                metric=line["metric"],
                quantity=_optional(line, "quantity", path),
                amount=_first(_optional(line, "subtotal", path), _optional(line, "amount", path)),
                unit_price=_optional(line, "unitPrice", path),
            )
        )
    total = _optional(data, "total", "expected")
    if total is None:
        raise PricingError("expected.total is required", param="expected.total")
    cur = data.get("currency")
    return ExpectedInvoice(
        total=total,
        subtotal=_optional(data, "subtotal", "expected"),
        credits=_optional(data, "credits", "expected"),
        tax=_optional(data, "tax", "expected"),
        currency=cur if isinstance(cur, str) else None,
        lines=tuple(read_lines),
    )


def tolerances_from_dict(data: Mapping[str, object] | None) -> Tolerances:
    """Read a scenario's ``tolerances`` block (``absolute``, ``relative``)."""
    if data is None:
        return Tolerances()
    if not isinstance(data, Mapping):
        raise PricingError("tolerances must be an object", param="tolerances")
    return Tolerances(
        absolute=_optional(data, "absolute", "tolerances") or ZERO,
        relative=_optional(data, "relative", "tolerances") or ZERO,
    )


def _optional(data: Mapping[str, object], key: str, path: str) -> Decimal | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise PricingError(f"{path}.{key} {exc}", param=f"{path}.{key}") from None


def _first(*values: Decimal | None) -> Decimal | None:
    return next((value for value in values if value is not None), None)
