"""Subscriptions on a test clock produce priced draft invoices, finalization and signed webhooks."""

from __future__ import annotations

import json
from typing import Any

import stripe

from stripemeter.stripe.fake.webhooks import verify
from tests.fake_stripe.conftest import START, WEBHOOK_SECRET, ControlClient, WebhookReceiver
from tests.fake_stripe.helpers import make_meter

DAY = 86400


def test_period_end_invoices_usage_and_sends_signed_webhooks(
    client: stripe.StripeClient, control: ControlClient, receiver: WebhookReceiver
) -> None:
    """Past period end a draft invoice is priced from the meter and finalized after the delay."""
    control.settings(finalize_delay=3600, upcoming_days=3)
    meter = make_meter(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": START})
    customer = client.v1.customers.create({"test_clock": clock.id})
    tiered: Any = {
        "currency": "usd",
        "product_data": {"name": "API"},
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": [
            {"up_to": 10, "unit_amount": 100},
            {"up_to": "inf", "unit_amount_decimal": "50.5"},
        ],
        "recurring": {"interval": "day", "usage_type": "metered", "meter": meter.id},
    }
    price = client.v1.prices.create(tiered)
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (START, START + DAY)
    for value in ("8", "7"):
        client.v1.billing.meter_events.create(
            {
                "event_name": "api_calls",
                "payload": {"stripe_customer_id": customer.id, "value": value},
                "timestamp": START + 100,
            }
        )
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": START + DAY + 10})
    invoices = client.v1.invoices.list({"customer": customer.id}).data
    assert len(invoices) == 1
    invoice = invoices[0]
    assert invoice.status == "draft"
    assert invoice.auto_advance is True
    # 10 x 100 + 5 x 50.5 = 1252.5 -> 1253 cents
    assert invoice.lines.data[0].quantity == 15
    assert invoice.total == 1253
    assert (invoice.period_start, invoice.period_end) == (START, START + DAY)

    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": START + DAY + 3600})
    assert client.v1.invoices.retrieve(invoice.id).status == "open"

    # The 1-day period is shorter than the 3-day lead, so the next period's notice comes at once.
    received = receiver.wait_for(4)
    assert receiver.types() == [
        "invoice.upcoming",
        "invoice.created",
        "invoice.upcoming",
        "invoice.finalized",
    ]
    for body, headers in received:
        assert verify(body, headers["Stripe-Signature"], WEBHOOK_SECRET)
        assert not verify(body, headers["Stripe-Signature"], "whsec_wrong")
    created = json.loads(received[1][0])
    assert created["data"]["object"]["id"] == invoice.id


def test_auto_advance_false_keeps_draft(
    client: stripe.StripeClient, control: ControlClient
) -> None:
    """Turning auto_advance off stops automatic finalization."""
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": START})
    customer = client.v1.customers.create({"test_clock": clock.id})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 500,
            "product_data": {"name": "seat"},
            "recurring": {"interval": "day"},
        }
    )
    client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id, "quantity": 2}]}
    )
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": START + DAY})
    invoice = client.v1.invoices.list({"customer": customer.id}).data[0]
    assert invoice.total == 1000
    client.v1.invoices.update(invoice.id, {"auto_advance": False})
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": START + DAY + 2 * 3600})
    assert client.v1.invoices.retrieve(invoice.id).status == "draft"


def test_invoice_has_every_required_field(client: stripe.StripeClient, openapi_dir: object) -> None:
    """Draft invoices carry every field the OpenAPI invoice component requires."""
    from pathlib import Path

    spec = json.loads((Path(str(openapi_dir)) / "component_invoice.structure.json").read_text())
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": START})
    customer = client.v1.customers.create({"test_clock": clock.id})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 1,
            "product_data": {"name": "p"},
            "recurring": {"interval": "day"},
        }
    )
    client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": START + DAY})
    invoice = client.v1.invoices.list().data[0]
    missing = [name for name in spec["required"] if name not in invoice]
    assert missing == []
