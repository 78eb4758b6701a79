"""``InvoiceSimulator``: the original product's entry point, over Stripe-shaped prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from stripemeter.domain.pricing.invoices import Invoice, InvoiceRequest, simulate_invoice
from stripemeter.domain.pricing.legacy import invoice_request_from_legacy
from stripemeter.domain.pricing.prices import Price


class InvoiceSimulator:
    """Prices invoices before Stripe does; stateless, so one instance can serve every caller."""

    def simulate(self, request: InvoiceRequest | Mapping[str, object]) -> Invoice:
        """The invoice for a typed request, or for the original product's camelCase input dict."""
        if not isinstance(request, InvoiceRequest):
            request = invoice_request_from_legacy(request)
        return simulate_invoice(request)

    def what_if(
        self, request: InvoiceRequest | Mapping[str, object], prices: Mapping[str, Price]
    ) -> tuple[Invoice, Invoice]:
        """The invoice as priced now and with ``prices`` (metric → price) swapped in, same usage."""
        if not isinstance(request, InvoiceRequest):
            request = invoice_request_from_legacy(request)
        changed = replace(
            request,
            items=tuple(
                replace(item, price=prices.get(item.metric, item.price)) for item in request.items
            ),
        )
        return simulate_invoice(request), simulate_invoice(changed)
