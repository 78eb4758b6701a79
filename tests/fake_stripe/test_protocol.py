"""Auth, idempotency keys, v2 sessions/streams and legacy usage records."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import stripe

from tests.fake_stripe.conftest import START, ControlClient
from tests.fake_stripe.helpers import make_meter, summaries


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class TestAuth:
    @pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer pk_test_x", "Basic sk_test_x"])
    def test_bad_or_missing_key_is_401(
        self, fake_url: str, control: ControlClient, header: str | None
    ) -> None:
        """Anything but a Bearer sk_test_/sk_live_ key is refused with a Stripe-shaped 401."""
        headers = {"Authorization": header} if header else {}
        response = httpx.get(f"{fake_url}/v1/customers", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"

    def test_live_and_test_data_are_apart(self, fake_url: str, client: stripe.StripeClient) -> None:
        """Objects carry livemode from the key and are invisible to the other mode."""
        customer = client.v1.customers.create({"metadata": {"ref": "a"}})
        assert customer.livemode is False
        live = stripe.StripeClient(
            "sk_live_x", base_addresses={"api": fake_url}, max_network_retries=0
        )
        with pytest.raises(stripe.InvalidRequestError) as exc:
            live.v1.customers.retrieve(customer.id)
        assert exc.value.http_status == 404


class TestIdempotency:
    def test_same_key_same_params_replays(
        self, client: stripe.StripeClient, control: ControlClient
    ) -> None:
        """A retried request with the same key returns the first response and changes nothing."""
        meter = make_meter(client)
        params = {
            "event_name": "api_calls",
            "payload": {"stripe_customer_id": "cus_1", "value": "3"},
            "timestamp": START,
        }
        first = client.v1.billing.meter_events.create(params, {"idempotency_key": "k1"})  # type: ignore[arg-type]
        again = client.v1.billing.meter_events.create(params, {"idempotency_key": "k1"})  # type: ignore[arg-type]
        assert first.identifier == again.identifier
        assert again.last_response is not None
        assert again.last_response.headers["Idempotent-Replayed"] == "true"
        assert summaries(client, meter.id, "cus_1", START, START + 60).data[0].aggregated_value == 3

    def test_same_key_other_params_is_idempotency_error(self, client: stripe.StripeClient) -> None:
        """Reusing a key with different parameters raises stripe's IdempotencyError."""
        client.v1.customers.create({"name": "a"}, {"idempotency_key": "k2"})
        with pytest.raises(stripe.IdempotencyError) as exc:
            client.v1.customers.create({"name": "b"}, {"idempotency_key": "k2"})
        assert exc.value.http_status == 400

    def test_key_expires_after_24_hours(
        self, client: stripe.StripeClient, control: ControlClient
    ) -> None:
        """After 24 h the key is forgotten and the request runs again."""
        first = client.v1.customers.create({"name": "a"}, {"idempotency_key": "k3"})
        control.advance_clock(86400)
        second = client.v1.customers.create({"name": "a"}, {"idempotency_key": "k3"})
        assert first.id != second.id


class TestV2:
    def test_session_stream_and_expiry(
        self, fake_url: str, client: stripe.StripeClient, control: ControlClient
    ) -> None:
        """A session token authenticates the stream until it expires 15 minutes later."""
        meter = make_meter(client)
        session = client.v2.billing.meter_event_session.create()
        streamer = stripe.StripeClient(
            session.authentication_token,
            base_addresses={"api": fake_url, "meter_events": fake_url},
            max_network_retries=0,
        )
        events = [
            {
                "event_name": "api_calls",
                "payload": {"stripe_customer_id": "cus_1", "value": "2"},
                "timestamp": _iso(START),
            }
            for _ in range(3)
        ]
        streamer.v2.billing.meter_event_stream.create({"events": events})  # type: ignore[typeddict-item]
        assert summaries(client, meter.id, "cus_1", START, START + 60).data[0].aggregated_value == 6
        control.advance_clock(15 * 60)
        with pytest.raises(stripe.TemporarySessionExpiredError):
            streamer.v2.billing.meter_event_stream.create({"events": events[:1]})  # type: ignore[typeddict-item]

    def test_stream_refuses_more_than_100_events(
        self, fake_url: str, client: stripe.StripeClient
    ) -> None:
        """A stream request carries at most 100 events."""
        make_meter(client)
        token = client.v2.billing.meter_event_session.create().authentication_token
        events = [
            {"event_name": "api_calls", "payload": {"stripe_customer_id": "c", "value": "1"}}
        ] * 101
        response = httpx.post(
            f"{fake_url}/v2/billing/meter_event_stream",
            json={"events": events},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "events"

    def test_v2_meter_event_sync_validation(self, client: stripe.StripeClient) -> None:
        """The v2 single-event endpoint validates synchronously and dedupes identifiers."""
        make_meter(client)
        params = {
            "event_name": "api_calls",
            "identifier": "v2-1",
            "payload": {"stripe_customer_id": "cus_1", "value": "4"},
            "timestamp": _iso(START),
        }
        event = client.v2.billing.meter_events.create(params)  # type: ignore[arg-type]
        assert event.identifier == "v2-1"
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v2.billing.meter_events.create(params)  # type: ignore[arg-type]
        assert exc.value.code == "duplicate_meter_event"


class TestLegacyUsageRecords:
    def _item(self, client: stripe.StripeClient) -> str:
        customer = client.v1.customers.create({})
        price = client.v1.prices.create(
            {
                "currency": "usd",
                "unit_amount": 10,
                "product_data": {"name": "legacy"},
                "recurring": {"interval": "month", "usage_type": "metered"},
            }
        )
        sub = client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": price.id}]}
        )
        return str(sub["items"].data[0].id)

    def test_increment_and_set_totals(
        self, client: stripe.StripeClient, control: ControlClient
    ) -> None:
        """increment adds at a timestamp, set replaces that timestamp's quantity; the summary sums them."""
        item = self._item(client)
        path = f"/v1/subscription_items/{item}/usage_records"
        client.raw_request("post", path, quantity=5, timestamp=START, action="increment")
        client.raw_request("post", path, quantity=2, timestamp=START, action="increment")
        control.advance_clock(60)
        client.raw_request("post", path, quantity=10, timestamp=START + 60, action="set")
        client.raw_request("post", path, quantity=4, timestamp=START + 60, action="set")
        raw = client.raw_request("get", f"/v1/subscription_items/{item}/usage_record_summaries")
        summary = client.deserialize(raw, api_mode="V1")
        assert summary["data"][0]["total_usage"] == 11

    def test_future_timestamp_is_refused(self, client: stripe.StripeClient) -> None:
        """Usage records cannot be dated in the future."""
        item = self._item(client)
        with pytest.raises(stripe.InvalidRequestError):
            client.raw_request(
                "post",
                f"/v1/subscription_items/{item}/usage_records",
                quantity=1,
                timestamp=START + 10,
            )
