"""Line limits, commitments, credits and tax, applied in the documented order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stripemeter.domain.periods import Period
from stripemeter.domain.pricing import (
    ChargeLimits,
    Commitment,
    Credit,
    CurrencyMismatch,
    InvoiceRequest,
    PerUnitPrice,
    PricingError,
    UsageItem,
    currency,
    simulate_invoice,
)

D = Decimal
USD = currency("usd")
JANUARY = Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
CENT = PerUnitPrice(USD, D(1))  # one cent per unit: quantity == cents


def request(*items: UsageItem, **extra: object) -> InvoiceRequest:
    return InvoiceRequest("cus_1", JANUARY, items, USD, **extra)  # type: ignore[arg-type]


def usage(cents: int, metric: str = "calls", limits: ChargeLimits | None = None) -> UsageItem:
    return UsageItem(metric, D(cents), CENT, limits or ChargeLimits())


class TestLineLimits:
    def test_minimum_raises_a_small_line(self) -> None:
        """A line under its minimum is charged the minimum."""
        line = simulate_invoice(request(usage(300, limits=ChargeLimits(minimum=500)))).lines[0]
        assert (line.priced.amount, line.amount, line.limit_adjustment) == (300, 500, 200)

    def test_minimum_applies_at_zero_usage(self) -> None:
        """The minimum is owed even when nothing was used."""
        assert simulate_invoice(request(usage(0, limits=ChargeLimits(minimum=500)))).subtotal == 500

    def test_maximum_caps_a_large_line(self) -> None:
        """A line above its maximum is charged the maximum."""
        line = simulate_invoice(request(usage(9000, limits=ChargeLimits(maximum=5000)))).lines[0]
        assert (line.amount, line.limit_adjustment) == (5000, -4000)

    def test_zero_maximum_is_a_real_limit(self) -> None:
        """A maximum of 0 makes the line free; only None means "no limit"."""
        assert simulate_invoice(request(usage(9000, limits=ChargeLimits(maximum=0)))).total == 0

    def test_minimum_above_maximum_is_refused(self) -> None:
        """Limits that contradict each other are refused."""
        with pytest.raises(PricingError):
            ChargeLimits(minimum=10, maximum=5)


class TestCommitmentsAndCredits:
    def test_commitment_is_drawn_down_before_credits(self) -> None:
        """A $30 prepaid commitment pays first, then a $10 credit, on a $35 invoice."""
        invoice = simulate_invoice(
            request(
                usage(3500),
                commitments=(Commitment(3000, JANUARY),),
                credits=(Credit(1000, "goodwill"),),
            )
        )
        assert [(d.applied, d.unused) for d in invoice.commitments] == [(3000, 0)]
        assert [(d.applied, d.unused) for d in invoice.credits] == [(500, 500)]
        assert (invoice.taxable, invoice.total) == (0, 0)

    def test_commitment_draws_only_what_remains(self) -> None:
        """A $100 commitment with $90 already applied pays only $10."""
        invoice = simulate_invoice(
            request(usage(5000), commitments=(Commitment(10000, JANUARY, applied=9000),))
        )
        assert invoice.commitment_total == 1000
        assert invoice.total == 4000

    def test_over_drawn_commitment_pays_nothing_and_never_charges(self) -> None:
        """A commitment applied beyond its amount draws zero, never a negative credit."""
        invoice = simulate_invoice(
            request(usage(5000), commitments=(Commitment(1000, JANUARY, applied=2000),))
        )
        assert invoice.commitment_total == 0
        assert invoice.total == 5000

    def test_commitment_outside_the_period_is_ignored(self) -> None:
        """A commitment whose term ends when the period starts does not apply (half-open)."""
        december = Period(datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
        invoice = simulate_invoice(request(usage(5000), commitments=(Commitment(1000, december),)))
        assert invoice.commitments == ()

    def test_expired_credit_is_ignored(self) -> None:
        """A credit that expired before the period end does not apply; one expiring at it does."""
        expired = Credit(1000, "old", datetime(2024, 1, 31, tzinfo=UTC))
        at_end = Credit(700, "edge", JANUARY.end)
        invoice = simulate_invoice(request(usage(5000), credits=(expired, at_end)))
        assert [(d.source, d.applied) for d in invoice.credits] == [(at_end, 700)]

    def test_credits_expiring_soonest_are_used_first(self) -> None:
        """With $20 due, the credit expiring first is used before one that never expires."""
        forever = Credit(2000, "forever")
        soon = Credit(1500, "soon", datetime(2024, 3, 1, tzinfo=UTC))
        invoice = simulate_invoice(request(usage(2000), credits=(forever, soon)))
        assert [(d.source.reason, d.applied, d.unused) for d in invoice.credits] == [  # type: ignore[union-attr]
            ("soon", 1500, 0),
            ("forever", 500, 1500),
        ]


class TestTax:
    def test_exclusive_tax_on_the_amount_after_credits(self) -> None:
        """$100 usage, $20 credit, 8.25 % tax: taxable $80, tax $6.60, total $86.60."""
        invoice = simulate_invoice(
            request(usage(10000), credits=(Credit(2000),), tax_rate=D("8.25"))
        )
        assert (invoice.taxable, invoice.tax, invoice.total) == (8000, 660, 8660)

    def test_tax_rounds_once_half_away_from_zero(self) -> None:
        """10 % of 5 cents is 0.5 cent, charged as 1 cent."""
        invoice = simulate_invoice(request(usage(5), tax_rate=D(10)))
        assert (invoice.tax, invoice.total) == (1, 6)

    def test_negative_tax_rate_is_refused(self) -> None:
        """A tax rate must not be negative."""
        with pytest.raises(PricingError):
            simulate_invoice(request(usage(5), tax_rate=D(-1)))


class TestInvoiceShape:
    def test_negative_usage_bills_as_zero(self) -> None:
        """A negative period total (corrections exceeding usage) is billed as zero."""
        line = simulate_invoice(request(usage(-40))).lines[0]
        assert (line.quantity, line.amount) == (D(-40), 0)

    def test_lines_are_found_by_metric_and_described(self) -> None:
        """Each line keeps its metric and a readable description."""
        invoice = simulate_invoice(request(usage(12, "calls"), usage(3, "seats")))
        assert invoice.line("seats").amount == 3
        assert invoice.line("calls").description == "12 units of calls"
        assert invoice.subtotal == 15
        assert invoice.major(invoice.total) == D("0.15")

    def test_price_in_another_currency_is_refused(self) -> None:
        """A line priced in EUR cannot join a USD invoice."""
        euro = UsageItem("calls", D(1), PerUnitPrice(currency("eur"), D(1)))
        with pytest.raises(CurrencyMismatch) as caught:
            simulate_invoice(request(euro))
        assert caught.value.param == "items[0].price.currency"

    def test_period_must_not_be_empty(self) -> None:
        """A period that ends where it starts cannot be invoiced."""
        with pytest.raises(PricingError):
            simulate_invoice(InvoiceRequest("c", Period(JANUARY.start, JANUARY.start), (), USD))
