"""Errors of the pricing library, all leaves of ``InvalidInput``.

InvalidInput
 └── PricingError            a price, quantity or invoice request the library cannot price
      ├── InvalidPrice        a price breaks one of Stripe's rules (``param`` names the field)
      ├── UnsupportedPrice    a valid Stripe price this library does not model (custom amounts)
      └── CurrencyMismatch    amounts in different currencies meet on one invoice
"""

from __future__ import annotations

from stripemeter.domain.errors import InvalidInput


class PricingError(InvalidInput):
    """A price, quantity or invoice request that cannot be priced."""

    code = "invalid_pricing"


class InvalidPrice(PricingError):
    """A price that breaks one of Stripe's rules."""

    code = "invalid_price"


class UnsupportedPrice(PricingError):
    """A valid Stripe price that this library does not model."""

    code = "unsupported_price"


class CurrencyMismatch(PricingError):
    """Two amounts in different currencies on one invoice."""

    code = "currency_mismatch"
