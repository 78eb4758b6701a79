"""Pricing the way Stripe prices: currencies, price models, line amounts and simulated invoices.

Pure and exact: Decimal arithmetic, no I/O, no settings. See docs/pricing.md for the rules.
"""

from __future__ import annotations

from stripemeter.domain.pricing.adjustments import ChargeLimits, Commitment, Credit, Drawdown
from stripemeter.domain.pricing.calculate import LineAmount, TierAmount, packages, price_line
from stripemeter.domain.pricing.comparison import (
    Difference,
    ExpectedInvoice,
    ExpectedLine,
    InvoiceComparison,
    Tolerances,
    compare_invoices,
    expected_invoice_from_dict,
    tolerances_from_dict,
)
from stripemeter.domain.pricing.currencies import (
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    Currency,
    currency,
    round_minor_units,
    to_major_units,
    to_minor_units,
)
from stripemeter.domain.pricing.errors import (
    CurrencyMismatch,
    InvalidPrice,
    PricingError,
    UnsupportedPrice,
)
from stripemeter.domain.pricing.invoices import (
    Invoice,
    InvoiceLine,
    InvoiceRequest,
    UsageItem,
    simulate_invoice,
)
from stripemeter.domain.pricing.legacy import invoice_request_from_legacy, price_from_legacy
from stripemeter.domain.pricing.prices import (
    PackagePrice,
    PackageRounding,
    PerUnitPrice,
    Price,
    Tier,
    TieredPrice,
    TiersMode,
)
from stripemeter.domain.pricing.simulator import InvoiceSimulator
from stripemeter.domain.pricing.stripe_json import price_from_stripe

__all__ = [
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "ChargeLimits",
    "Commitment",
    "Credit",
    "Currency",
    "CurrencyMismatch",
    "Difference",
    "Drawdown",
    "ExpectedInvoice",
    "ExpectedLine",
    "InvalidPrice",
    "Invoice",
    "InvoiceComparison",
    "InvoiceLine",
    "InvoiceRequest",
    "InvoiceSimulator",
    "LineAmount",
    "PackagePrice",
    "PackageRounding",
    "PerUnitPrice",
    "Price",
    "PricingError",
    "Tier",
    "TierAmount",
    "TieredPrice",
    "TiersMode",
    "Tolerances",
    "UnsupportedPrice",
    "UsageItem",
    "compare_invoices",
    "currency",
    "expected_invoice_from_dict",
    "invoice_request_from_legacy",
    "packages",
    "price_from_legacy",
    "price_from_stripe",
    "price_line",
    "round_minor_units",
    "simulate_invoice",
    "to_major_units",
    "to_minor_units",
    "tolerances_from_dict",
]
