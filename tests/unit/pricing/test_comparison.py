"""Comparing a simulated invoice with an expected one, within tolerances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripemeter.domain.pricing import (
    ExpectedInvoice,
    ExpectedLine,
    Invoice,
    InvoiceSimulator,
    PricingError,
    Tolerances,
    compare_invoices,
    expected_invoice_from_dict,
    tolerances_from_dict,
)

D = Decimal


@pytest.fixture
def invoice() -> Invoice:
    return InvoiceSimulator().simulate(
        {
            "customerId": "c",
            "periodStart": "2024-01-01",
            "periodEnd": "2024-02-01",
            "usageItems": [
                {"metric": "gb", "quantity": 10,
                 "priceConfig": {"model": "flat", "currency": "usd", "unitPrice": 2.5}},
            ],
            "taxRate": 20,
        }
    )  # fmt: skip


def test_exact_match_passes(invoice: Invoice) -> None:
    """An expectation equal to the invoice in every field passes."""
    expected = ExpectedInvoice(
        total=D(30), subtotal=D(25), tax=D(5), credits=D(0), currency="USD",
        lines=(ExpectedLine("gb", quantity=D(10), amount=D(25), unit_price=D("2.5")),),
    )  # fmt: skip
    assert compare_invoices(expected, invoice).passed


def test_default_tolerance_is_exact(invoice: Invoice) -> None:
    """One cent off fails when no tolerance is given, and the gap is reported."""
    result = compare_invoices(ExpectedInvoice(total=D("29.99")), invoice)
    assert not result.passed
    (diff,) = result.differences
    assert (diff.field, diff.gap) == ("total", D("0.01"))
    assert str(diff) == "total: expected 29.99, got 30.00"


def test_absolute_tolerance(invoice: Invoice) -> None:
    """A one-cent absolute tolerance accepts a one-cent gap and no more."""
    tol = Tolerances(absolute=D("0.01"))
    assert compare_invoices(ExpectedInvoice(total=D("29.99")), invoice, tol).passed
    assert not compare_invoices(ExpectedInvoice(total=D("29.98")), invoice, tol).passed


def test_relative_tolerance(invoice: Invoice) -> None:
    """A 1 % tolerance (of the expected amount) accepts 29.71 for an actual 30, not 29.50."""
    tol = Tolerances(relative=D("0.01"))
    assert compare_invoices(ExpectedInvoice(total=D("29.71")), invoice, tol).passed
    assert not compare_invoices(ExpectedInvoice(total=D("29.50")), invoice, tol).passed


def test_every_mismatch_is_listed(invoice: Invoice) -> None:
    """Currency, quantity, line amount and missing lines each produce a named difference."""
    expected = ExpectedInvoice(
        total=D(30), currency="eur",
        lines=(ExpectedLine("gb", quantity=D(11), amount=D(24)), ExpectedLine("seats")),
    )  # fmt: skip
    fields = [d.field for d in compare_invoices(expected, invoice).differences]
    assert fields == ["currency", "lines.gb.quantity", "lines.gb.amount", "lines.seats"]


def test_expected_and_tolerances_read_from_the_original_shape(invoice: Invoice) -> None:
    """``expected`` with camelCase ``lineItems`` and a ``tolerances`` block read as typed values."""
    expected = expected_invoice_from_dict(
        {"total": 30.004, "subtotal": 25, "tax": 5, "currency": "USD",
         "lineItems": [{"metric": "gb", "quantity": 10, "subtotal": 25, "unitPrice": 2.5}]}
    )  # fmt: skip
    assert expected.lines == (ExpectedLine("gb", D(10), D(25), D("2.5")),)
    tol = tolerances_from_dict({"absolute": 0.005, "relative": 0})
    assert compare_invoices(expected, invoice, tol).passed


def test_zero_line_subtotal_is_read_as_zero() -> None:
    """A ``subtotal`` of 0 is an expectation of zero, not a missing one."""
    expected = expected_invoice_from_dict(
        {"total": 0, "lineItems": [{"metric": "m", "subtotal": 0}]}
    )
    assert expected.lines[0].amount == 0


@pytest.mark.parametrize(
    ("data", "param"),
    [({}, "expected.total"), ({"total": "x"}, "expected.total"),
     ({"total": 1, "lineItems": [{}]}, "expected.lineItems[0]")],
)  # fmt: skip
def test_bad_expectations_name_the_field(data: dict[str, object], param: str) -> None:
    """A malformed expectation is refused with its field."""
    with pytest.raises(PricingError) as caught:
        expected_invoice_from_dict(data)
    assert caught.value.param == param


def test_tolerances_are_bounded() -> None:
    """Negative tolerances and relative tolerances above 1 are refused."""
    with pytest.raises(PricingError):
        Tolerances(absolute=D(-1))
    with pytest.raises(PricingError):
        Tolerances(relative=D(2))
