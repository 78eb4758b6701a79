"""The fake Stripe prices draft invoices with ``stripemeter.domain.pricing``: cross-checked by hand."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from stripemeter.stripe.fake.billing import line_amount

START = 1_785_758_400  # 2026-08-03T12:00:00Z, minute-aligned
DAY = 86400
_names = itertools.count()

TIERS = [{"up_to": 10, "unit_amount": 100, "flat_amount": 50}, {"up_to": None, "unit_amount": 10}]


@pytest.mark.parametrize(
    ("price", "quantity", "expected"),
    [
        ({"unit_amount_decimal": "0.5"}, "3", 2),  # 1.5 cents rounds half away from zero
        (
            {"unit_amount": 1000, "transform_quantity": {"divide_by": 100, "round": "up"}},
            "101",
            2000,
        ),
        (
            {"unit_amount": 1000, "transform_quantity": {"divide_by": 100, "round": "down"}},
            "101",
            1000,
        ),
        ({"billing_scheme": "tiered", "tiers_mode": "graduated", "tiers": TIERS}, "12", 1070),
        ({"billing_scheme": "tiered", "tiers_mode": "volume", "tiers": TIERS}, "12", 120),
        ({"billing_scheme": "tiered", "tiers_mode": "volume", "tiers": TIERS}, "10", 1050),
        ({"unit_amount": 100}, "-4", 0),
    ],
)
def test_line_amount_is_the_library_price(
    price: dict[str, Any], quantity: str, expected: int
) -> None:
    """The fake's line amount is Stripe's rounded amount; negative period totals bill zero."""
    assert line_amount({"currency": "usd", **price}, Decimal(quantity)) == expected


@pytest.fixture
def fake(fake_stripe_url: str) -> Iterator[httpx.Client]:
    """The fake's control API with its clock frozen at START."""
    with httpx.Client(base_url=fake_stripe_url, timeout=10) as control:
        control.post("/_control/clock", json={"set": START}).raise_for_status()
        yield control


def invoice_total(client: stripe.StripeClient, price: dict[str, Any], values: list[str]) -> Any:
    """Meter ``values`` for a new customer on ``price`` for one day; return the draft invoice."""
    name = f"xcheck_{next(_names)}"
    meter = client.v1.billing.meters.create(
        {"display_name": name, "event_name": name, "default_aggregation": {"formula": "sum"}}
    )
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": START})
    customer = client.v1.customers.create({"test_clock": clock.id})
    params: Any = {
        "product_data": {"name": name},
        "recurring": {"interval": "day", "usage_type": "metered", "meter": meter.id},
        **price,
    }
    created = client.v1.prices.create(params)
    client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": created.id}]})
    for value in values:
        client.v1.billing.meter_events.create(
            {"event_name": name, "payload": {"stripe_customer_id": customer.id, "value": value},
             "timestamp": START + 60}
        )  # fmt: skip
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": START + DAY + 10})
    invoices = client.v1.invoices.list({"customer": customer.id}).data
    assert len(invoices) == 1
    return invoices[0]


GRADUATED_FLAT = {
    "currency": "usd",
    "billing_scheme": "tiered",
    "tiers_mode": "graduated",
    "tiers": [
        {"up_to": 1000, "unit_amount": 0, "flat_amount": 2000},
        {"up_to": "inf", "unit_amount_decimal": "1.5"},
    ],
}
STRIPE_DOC_TIERS = [
    {"up_to": 5, "unit_amount": 500},
    {"up_to": 10, "unit_amount": 400},
    {"up_to": 15, "unit_amount": 300},
    {"up_to": 20, "unit_amount": 200},
    {"up_to": "inf", "unit_amount": 100},
]


@pytest.mark.parametrize(
    ("price", "values", "by_hand"),
    [
        # $20 platform fee for the first 1,000, then 1.5 cents: 2000 + 501 x 1.5 = 2751.5 -> 2752
        (GRADUATED_FLAT, ["1200", "301"], 2752),
        # Stripe's documented volume example: 6 units all at the second tier, 6 x $4
        (
            {
                "currency": "usd",
                "billing_scheme": "tiered",
                "tiers_mode": "volume",
                "tiers": STRIPE_DOC_TIERS,
            },
            ["4", "2"],
            2400,
        ),
        # Stripe's documented graduated example at 20 units: 25 + 20 + 15 + 10 dollars
        (
            {
                "currency": "usd",
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": STRIPE_DOC_TIERS,
            },
            ["20"],
            7000,
        ),
        # 150 minutes at $10 per started hour: 3 hours
        (
            {
                "currency": "usd",
                "unit_amount": 1000,
                "transform_quantity": {"divide_by": 60, "round": "up"},
            },
            ["90", "60"],
            3000,
        ),
        # a twentieth of a cent, 30 times: 1.5 cents -> 2
        ({"currency": "usd", "unit_amount_decimal": "0.05"}, ["10", "20"], 2),
        # JPY is zero-decimal: 1,001 x 3 yen
        ({"currency": "jpy", "unit_amount": 3}, ["1001"], 3003),
    ],
)
def test_fake_draft_invoices_match_hand_computed_totals(
    fake: httpx.Client,
    stripe_client: stripe.StripeClient,
    price: dict[str, Any],
    values: list[str],
    by_hand: int,
) -> None:
    """A period's draft invoice from the fake equals the amount worked out by hand, in minor units."""
    invoice = invoice_total(stripe_client, price, values)
    assert invoice.status == "draft"
    assert invoice.lines.data[0].amount == by_hand
    assert invoice.total == by_hand
    assert invoice.currency == price["currency"]
