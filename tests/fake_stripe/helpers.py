"""Small builders shared by the fake Stripe tests."""

from __future__ import annotations

from typing import Any

import stripe


def make_meter(
    client: stripe.StripeClient, event_name: str = "api_calls", formula: str = "sum"
) -> Any:
    """Create a meter with default payload keys."""
    return client.v1.billing.meters.create(
        {
            "display_name": event_name,
            "event_name": event_name,
            "default_aggregation": {"formula": formula},
        }
    )


def send(
    client: stripe.StripeClient,
    customer: str,
    value: str,
    timestamp: int,
    identifier: str | None = None,
    event_name: str = "api_calls",
) -> Any:
    """Send one v1 meter event."""
    params: dict[str, Any] = {
        "event_name": event_name,
        "payload": {"stripe_customer_id": customer, "value": value},
        "timestamp": timestamp,
    }
    if identifier is not None:
        params["identifier"] = identifier
    return client.v1.billing.meter_events.create(params)  # type: ignore[arg-type]


def summaries(
    client: stripe.StripeClient, meter: str, customer: str, start: int, end: int, **extra: Any
) -> Any:
    """List event summaries of a meter for a customer."""
    params = {"customer": customer, "start_time": start, "end_time": end, **extra}
    return client.v1.billing.meters.event_summaries.list(meter, params)  # type: ignore[arg-type]
