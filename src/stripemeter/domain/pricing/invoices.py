"""A simulated invoice for one customer and period, priced with Stripe's rules.

The order in which line limits, commitments, credits and tax apply is written out in
``stripemeter.domain.pricing.adjustments``. A negative usage total bills as zero, as Stripe does
for a meter whose period sum is negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from stripemeter.domain.periods import Period
from stripemeter.domain.pricing.adjustments import (
    ChargeLimits,
    Commitment,
    Credit,
    Drawdown,
    draw_commitments,
    draw_credits,
    exclusive_tax,
)
from stripemeter.domain.pricing.calculate import LineAmount, price_line
from stripemeter.domain.pricing.currencies import Currency, to_major_units
from stripemeter.domain.pricing.errors import CurrencyMismatch, PricingError
from stripemeter.domain.pricing.prices import Price
from stripemeter.domain.quantities import canonical

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class UsageItem:
    """One metric's usage for the period, its Stripe price and optional line limits."""

    metric: str
    quantity: Decimal
    price: Price
    limits: ChargeLimits = field(default_factory=ChargeLimits)


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """Everything needed to price one invoice; ``tax_rate`` is an exclusive percentage."""

    customer_id: str
    period: Period
    items: tuple[UsageItem, ...]
    currency: Currency
    commitments: tuple[Commitment, ...] = ()
    credits: tuple[Credit, ...] = ()
    tax_rate: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """A priced line: the reported quantity, Stripe's amount, and the amount after line limits."""

    metric: str
    quantity: Decimal
    priced: LineAmount
    amount: int

    @property
    def limit_adjustment(self) -> int:
        """What the minimum added (positive) or the maximum removed (negative)."""
        return self.amount - self.priced.amount

    @property
    def description(self) -> str:
        """``25000 units of api_calls``."""
        return f"{canonical(self.quantity)} units of {self.metric}"


@dataclass(frozen=True, slots=True)
class Invoice:
    """The simulated invoice; every amount is an integer count of the currency's minor units."""

    customer_id: str
    period: Period
    currency: Currency
    lines: tuple[InvoiceLine, ...]
    subtotal: int
    commitments: tuple[Drawdown, ...]
    credits: tuple[Drawdown, ...]
    taxable: int
    tax_rate: Decimal
    tax: int
    total: int

    @property
    def commitment_total(self) -> int:
        """What the commitments paid."""
        return sum(draw.applied for draw in self.commitments)

    @property
    def credit_total(self) -> int:
        """What the credits paid."""
        return sum(draw.applied for draw in self.credits)

    def line(self, metric: str) -> InvoiceLine:
        """The line for ``metric``; KeyError if there is none."""
        for line in self.lines:
            if line.metric == metric:
                return line
        raise KeyError(metric)

    def major(self, amount: int) -> Decimal:
        """An amount of this invoice in major units (``2200`` USD is ``22.00``)."""
        return to_major_units(amount, self.currency)


def simulate_invoice(request: InvoiceRequest) -> Invoice:
    """Price every usage item and apply limits, commitments, credits and tax, in that order."""
    if request.period.end <= request.period.start:
        raise PricingError("the period must end after it starts", param="period")
    lines = []
    for index, item in enumerate(request.items):
        if item.price.currency != request.currency:
            raise CurrencyMismatch(
                f"{item.metric} is priced in {item.price.currency.code.upper()}, "
                f"the invoice in {request.currency.code.upper()}",
                param=f"items[{index}].price.currency",
            )
        priced = price_line(item.price, max(item.quantity, ZERO))
        lines.append(
            InvoiceLine(item.metric, item.quantity, priced, item.limits.apply(priced.amount))
        )
    subtotal = sum(line.amount for line in lines)
    commitments = draw_commitments(request.commitments, request.period, subtotal)
    due = subtotal - sum(draw.applied for draw in commitments)
    credits = draw_credits(request.credits, request.period, due)
    taxable = due - sum(draw.applied for draw in credits)
    tax = exclusive_tax(taxable, request.tax_rate)
    return Invoice(
        customer_id=request.customer_id,
        period=request.period,
        currency=request.currency,
        lines=tuple(lines),
        subtotal=subtotal,
        commitments=commitments,
        credits=credits,
        taxable=taxable,
        tax_rate=request.tax_rate,
        tax=tax,
        total=taxable + tax,
    )
