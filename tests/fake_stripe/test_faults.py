"""Fault injection through /_control/, as the stripe client experiences it, and the request log."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.fake_stripe.conftest import ControlClient, WebhookReceiver
from tests.fake_stripe.helpers import make_meter


def test_rate_limit_without_retries_raises_rate_limit_error(
    client: stripe.StripeClient, control: ControlClient
) -> None:
    """A 429 surfaces as RateLimitError once, then requests succeed again."""
    control.fault(kind="rate_limit", count=1, path="/v1/customers")
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.create({})
    client.v1.customers.create({})


@pytest.mark.parametrize(("should_retry", "expected_calls"), [("true", 2), ("false", 1), (None, 1)])
def test_should_retry_header_steers_the_client(
    fake_url: str, control: ControlClient, should_retry: str | None, expected_calls: int
) -> None:
    """With retries on, stripe retries a 429 only when Stripe-Should-Retry says true."""
    control.fault(kind="rate_limit", count=1, path="/v1/customers", should_retry=should_retry)
    retrying = stripe.StripeClient(
        "sk_test_x", base_addresses={"api": fake_url}, max_network_retries=1
    )
    if expected_calls == 1:
        with pytest.raises(stripe.RateLimitError):
            retrying.v1.customers.create({})
    else:
        retrying.v1.customers.create({})
    assert len(control.requests("/v1/customers")) == expected_calls


def test_server_error_is_api_error(client: stripe.StripeClient, control: ControlClient) -> None:
    """An injected 500 surfaces as stripe.APIError."""
    control.fault(kind="server_error", count=1, path="/v1/billing/meters")
    with pytest.raises(stripe.APIError):
        make_meter(client)


def test_slow_response_times_out_the_client(fake_url: str, control: ControlClient) -> None:
    """A delayed response trips the client's timeout (APIConnectionError)."""
    control.fault(kind="delay", delay=1.0, path="/v1/customers")
    http = stripe.RequestsClient(timeout=0.3)
    slow = stripe.StripeClient(
        "sk_test_x", base_addresses={"api": fake_url}, max_network_retries=0, http_client=http
    )
    with pytest.raises(stripe.APIConnectionError):
        slow.v1.customers.create({})
    time.sleep(1.0)


def test_dropped_connection_is_connection_error(
    client: stripe.StripeClient, control: ControlClient
) -> None:
    """A connection closed without any response surfaces as APIConnectionError, then service resumes."""
    control.fault(kind="drop", count=1, path="/v1/customers")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create({})
    client.v1.customers.create({})
    statuses = [r["status"] for r in control.requests("/v1/customers")]
    assert statuses == [None, 200]


def test_request_log_records_params_headers_and_status(
    client: stripe.StripeClient, control: ControlClient
) -> None:
    """Every request is logged with decoded params, selected headers and the status."""
    client.v1.customers.create({"metadata": {"ref": "r1"}}, {"idempotency_key": "log-1"})
    entry = control.requests("/v1/customers")[-1]
    assert entry["method"] == "POST"
    assert entry["params"] == {"metadata": {"ref": "r1"}}
    assert entry["headers"]["idempotency-key"] == "log-1"
    assert entry["status"] == 200


def test_duplicate_webhook_delivery(
    client: stripe.StripeClient, control: ControlClient, receiver: WebhookReceiver
) -> None:
    """A duplicate_webhook fault delivers the same event twice."""
    control.fault(kind="duplicate_webhook", count=1, path="invoice.created")
    control.settings(upcoming_days=0)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": 1_785_758_400})
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
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": 1_785_758_400 + 86400})
    receiver.wait_for(3)
    assert receiver.types().count("invoice.created") == 2
