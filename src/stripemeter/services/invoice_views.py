"""Priced lines and simulated invoices as plain camelCase dicts, for responses and stored results.

Amounts come twice where it helps: ``amount`` in the currency's minor units (an integer, as in
Stripe's API) and ``total``/``subtotal``/… in major units (exact decimals). Tier parts keep Stripe's
units: ``unitAmountDecimal`` and ``flatAmount`` in minor units, ``amountExact`` unrounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stripemeter.domain.pricing import Currency, Invoice, InvoiceLine, LineAmount, to_major_units
from stripemeter.domain.quantities import canonical
from stripemeter.domain.times import canonical_time


def tiers_view(line: LineAmount) -> list[dict[str, Any]]:
    """The per-tier breakdown of a priced line."""
    return [
        {
            "tier": part.index + 1,
            "upTo": part.up_to,
            "quantity": part.quantity,
            "unitAmountDecimal": part.unit_amount_decimal,
            "flatAmount": part.flat_amount,
            "amountExact": part.amount,
        }
        for part in line.parts
    ]


def major(amount: int | Decimal, of: Currency) -> Decimal:
    """Minor units to an exact major amount."""
    return to_major_units(amount, of)


def unit_price(amount: int, quantity: Decimal, of: Currency) -> Decimal | None:
    """The effective price per unit in major units (amount ÷ quantity), None at zero quantity."""
    if not quantity:
        return None
    return major(amount, of) / quantity


def invoice_line_view(line: InvoiceLine, of: Currency) -> dict[str, Any]:
    """One simulated invoice line."""
    return {
        "metric": line.metric,
        "description": line.description,
        "quantity": line.quantity,
        "amount": line.amount,
        "subtotal": major(line.amount, of),
        "unitPrice": unit_price(line.amount, line.quantity, of),
        "rounding": line.priced.rounding,
        "limitAdjustment": line.limit_adjustment,
        "tiers": tiers_view(line.priced),
    }


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    """A simulated invoice: lines, subtotal, credits (commitments included), tax and total."""
    cur = invoice.currency
    return {
        "customerId": invoice.customer_id,
        "periodStart": invoice.period.start,
        "periodEnd": invoice.period.end,
        "currency": cur.code,
        "lineItems": [invoice_line_view(line, cur) for line in invoice.lines],
        "subtotal": major(invoice.subtotal, cur),
        "commitments": major(invoice.commitment_total, cur),
        "credits": major(invoice.commitment_total + invoice.credit_total, cur),
        "taxRate": invoice.tax_rate,
        "tax": major(invoice.tax, cur),
        "total": major(invoice.total, cur),
        "amounts": {
            "subtotal": invoice.subtotal,
            "credits": invoice.commitment_total + invoice.credit_total,
            "tax": invoice.tax,
            "total": invoice.total,
        },
    }


def jsonable(value: Any) -> Any:
    """A value JSON columns can store: Decimals become canonical strings, datetimes RFC 3339."""
    if isinstance(value, Decimal):
        return canonical(value)
    if isinstance(value, datetime):
        return canonical_time(value.astimezone(UTC))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
