"""Billing meters, meter events, adjustments and event summaries through the stripe client."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe

from tests.fake_stripe.conftest import START, ControlClient
from tests.fake_stripe.helpers import make_meter, send, summaries


class TestMeters:
    def test_create_retrieve_list_with_defaults(self, client: stripe.StripeClient) -> None:
        """A meter gets Stripe's default customer and value payload keys and can be read back."""
        meter = make_meter(client)
        assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
        assert meter.value_settings.event_payload_key == "value"
        assert client.v1.billing.meters.retrieve(meter.id).event_name == "api_calls"
        assert [m.id for m in client.v1.billing.meters.list().data] == [meter.id]

    def test_bad_formula_and_missing_field_are_rejected(self, client: stripe.StripeClient) -> None:
        """An unknown formula and a missing display_name give Stripe-shaped 400s naming the param."""
        with pytest.raises(stripe.InvalidRequestError) as bad:
            client.v1.billing.meters.create(
                {"display_name": "x", "event_name": "x", "default_aggregation": {"formula": "max"}}
            )
        assert bad.value.param == "default_aggregation[formula]"
        no_name: Any = {"event_name": "x", "default_aggregation": {"formula": "sum"}}
        with pytest.raises(stripe.InvalidRequestError) as missing:
            client.v1.billing.meters.create(no_name)
        assert missing.value.code == "parameter_missing"
        assert missing.value.param == "display_name"

    def test_custom_payload_keys(self, client: stripe.StripeClient) -> None:
        """Events are read with the meter's own customer and value keys."""
        meter = client.v1.billing.meters.create(
            {
                "display_name": "tokens",
                "event_name": "tokens",
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"event_payload_key": "cust", "type": "by_id"},
                "value_settings": {"event_payload_key": "n"},
            }
        )
        client.v1.billing.meter_events.create(
            {"event_name": "tokens", "payload": {"cust": "cus_1", "n": "7"}, "timestamp": START}
        )
        result = summaries(client, meter.id, "cus_1", START, START + 60)
        assert result.data[0].aggregated_value == 7


class TestMeterEvents:
    def test_duplicate_identifier_is_stripes_400(self, client: stripe.StripeClient) -> None:
        """A repeated identifier within 24 h answers Stripe's 'already exists' error, not counted."""
        meter = make_meter(client)
        send(client, "cus_1", "5", START, identifier="push-1")
        with pytest.raises(stripe.InvalidRequestError) as exc:
            send(client, "cus_1", "5", START, identifier="push-1")
        assert exc.value.http_status == 400
        assert str(exc.value.user_message) == "An event already exists with identifier push-1."
        assert exc.value.headers is not None
        assert exc.value.headers["Stripe-Should-Retry"] == "false"
        assert summaries(client, meter.id, "cus_1", START, START + 60).data[0].aggregated_value == 5

    def test_identifier_is_free_again_after_24_hours(
        self, client: stripe.StripeClient, control: ControlClient
    ) -> None:
        """Stripe's dedupe window is 24 h: the same identifier is accepted after it."""
        make_meter(client)
        send(client, "cus_1", "1", START, identifier="again")
        control.advance_clock(86400)
        send(client, "cus_1", "1", START + 86400, identifier="again")

    def test_generated_identifier(self, client: stripe.StripeClient) -> None:
        """Without an identifier, the fake generates one."""
        make_meter(client)
        assert send(client, "cus_1", "1", START).identifier

    def test_identifier_longer_than_100_chars_is_rejected(
        self, client: stripe.StripeClient
    ) -> None:
        """identifier is limited to 100 characters."""
        make_meter(client)
        with pytest.raises(stripe.InvalidRequestError) as exc:
            send(client, "cus_1", "1", START, identifier="x" * 101)
        assert exc.value.param == "identifier"

    @pytest.mark.parametrize(
        ("offset", "accepted"),
        [(-35 * 86400, True), (-35 * 86400 - 1, False), (300, True), (301, False)],
    )
    def test_timestamp_window(
        self, client: stripe.StripeClient, offset: int, accepted: bool
    ) -> None:
        """Timestamps are accepted from 35 days back to 5 minutes ahead of the fake clock."""
        make_meter(client)
        if accepted:
            send(client, "cus_1", "1", START + offset)
        else:
            with pytest.raises(stripe.InvalidRequestError) as exc:
                send(client, "cus_1", "1", START + offset)
            assert exc.value.param == "timestamp"

    def test_unknown_event_name(self, client: stripe.StripeClient) -> None:
        """An event_name without an active meter is refused."""
        with pytest.raises(stripe.InvalidRequestError) as exc:
            send(client, "cus_1", "1", START, event_name="nope")
        assert exc.value.param == "event_name"

    @pytest.mark.parametrize("value", ["abc", "1e3", "NaN", ""])
    def test_non_numeric_values_are_rejected(self, client: stripe.StripeClient, value: str) -> None:
        """Values must be plain numeric strings."""
        make_meter(client)
        with pytest.raises(stripe.InvalidRequestError) as exc:
            send(client, "cus_1", value, START)
        assert exc.value.param == "payload[value]"

    def test_decimal_and_negative_values_sum_exactly(self, client: stripe.StripeClient) -> None:
        """Decimal and negative values are kept exact (no float rounding)."""
        meter = make_meter(client)
        for value in ("0.1", "0.2", "-0.05"):
            send(client, "cus_1", value, START)
        raw = client.raw_request(
            "get",
            f"/v1/billing/meters/{meter.id}/event_summaries",
            customer="cus_1",
            start_time=START,
            end_time=START + 60,
        )
        assert (
            b'"aggregated_value":0.25' in raw.body.encode()
            if isinstance(raw.body, str)
            else raw.body
        )

    def test_missing_customer_key(self, client: stripe.StripeClient) -> None:
        """A payload without the meter's customer key is refused."""
        make_meter(client)
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.billing.meter_events.create(
                {"event_name": "api_calls", "payload": {"value": "1"}}
            )
        assert exc.value.param == "payload[stripe_customer_id]"


class TestAdjustments:
    def test_cancel_within_24_hours_removes_the_event(self, client: stripe.StripeClient) -> None:
        """A cancelled event no longer counts in summaries."""
        meter = make_meter(client)
        send(client, "cus_1", "5", START, identifier="a")
        send(client, "cus_1", "7", START, identifier="b")
        adjustment = client.v1.billing.meter_event_adjustments.create(
            {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "a"}}
        )
        assert adjustment.status == "complete"
        assert summaries(client, meter.id, "cus_1", START, START + 60).data[0].aggregated_value == 7

    def test_cancel_after_24_hours_is_refused(
        self, client: stripe.StripeClient, control: ControlClient
    ) -> None:
        """Stripe only cancels events received less than 24 h ago."""
        meter = make_meter(client)
        send(client, "cus_1", "5", START, identifier="a")
        control.advance_clock(86400 + 1)
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.billing.meter_event_adjustments.create(
                {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "a"}}
            )
        assert summaries(client, meter.id, "cus_1", START, START + 60).data[0].aggregated_value == 5

    def test_cancel_unknown_identifier(self, client: stripe.StripeClient) -> None:
        """Cancelling an identifier never seen is an error."""
        make_meter(client)
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.billing.meter_event_adjustments.create(
                {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "ghost"}}
            )


class TestSummaries:
    @pytest.mark.parametrize(
        ("start", "end", "extra", "param"),
        [
            (START + 1, START + 60, {}, "start_time"),
            (START, START + 61, {}, "end_time"),
            (START + 60, START + 7200, {"value_grouping_window": "hour"}, "start_time"),
            (START, START + 3600, {"value_grouping_window": "day"}, "start_time"),
        ],
    )
    def test_alignment_errors(
        self, client: stripe.StripeClient, start: int, end: int, extra: dict[str, str], param: str
    ) -> None:
        """start/end must sit on minute boundaries (hour/day when grouped)."""
        meter = make_meter(client)
        with pytest.raises(stripe.InvalidRequestError) as exc:
            summaries(client, meter.id, "cus_1", start, end, **extra)
        assert exc.value.param in (param, "end_time")

    def test_required_params(self, client: stripe.StripeClient) -> None:
        """customer, start_time and end_time are required."""
        meter = make_meter(client)
        no_customer: Any = {"start_time": START, "end_time": START + 60}
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.billing.meters.event_summaries.list(meter.id, no_customer)
        assert exc.value.param == "customer"

    @pytest.mark.parametrize(
        ("formula", "expected"), [("sum", [5, 10]), ("count", [2, 1]), ("last", [3, 10])]
    )
    def test_hourly_windows_per_formula(
        self, client: stripe.StripeClient, formula: str, expected: list[int]
    ) -> None:
        """Hourly grouping applies the meter's formula per window; other customers are excluded."""
        meter = make_meter(client, formula=formula)
        base = START - 2 * 3600
        send(client, "cus_1", "2", base + 10)
        send(client, "cus_1", "3", base + 20)
        send(client, "cus_1", "10", base + 3600)
        send(client, "cus_2", "100", base + 30)
        result = summaries(
            client, meter.id, "cus_1", base, base + 7200, value_grouping_window="hour"
        )
        assert [s.aggregated_value for s in result.data] == expected
        assert [(s.start_time, s.end_time) for s in result.data] == [
            (base, base + 3600),
            (base + 3600, base + 7200),
        ]

    def test_end_is_exclusive(self, client: stripe.StripeClient) -> None:
        """An event exactly at end_time belongs to the next range."""
        meter = make_meter(client)
        send(client, "cus_1", "4", START)
        assert summaries(client, meter.id, "cus_1", START - 60, START).data[0].aggregated_value == 0
        assert (
            Decimal(
                summaries(client, meter.id, "cus_1", START, START + 60).data[0].aggregated_value
            )
            == 4
        )
