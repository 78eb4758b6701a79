"""Billing Meters v1: one ``POST /v1/billing/meter_events`` per push (the default driver)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from stripemeter.domain.periods import Period
from stripemeter.stripe.accounts import StripeAccount
from stripemeter.stripe.drivers.base import (
    Destination,
    Driver,
    WirePush,
    options_for,
    unix,
    wire_decimal,
)
from stripemeter.stripe.errors import StripeCallError, map_stripe_errors

DEFAULT_CUSTOMER_KEY = "stripe_customer_id"
DEFAULT_VALUE_KEY = "value"
MINUTE = 60


class MeterEventsDriver(Driver):
    """Meter events with the push identifier as ``identifier`` and as ``Idempotency-Key``."""

    name = "meters"

    def __init__(self) -> None:
        self._payload_keys: dict[tuple[str, str], tuple[str, str]] = {}

    async def payload_keys(
        self, account: StripeAccount, destination: Destination
    ) -> tuple[str, str]:
        """The meter's customer and value payload keys (read once per meter)."""
        if destination.meter_id is None:
            return DEFAULT_CUSTOMER_KEY, DEFAULT_VALUE_KEY
        cache_key = (account.name, destination.meter_id)
        if cache_key not in self._payload_keys:
            with map_stripe_errors():
                meter = await account.client.v1.billing.meters.retrieve_async(
                    destination.meter_id, options=options_for(destination)
                )
            self._payload_keys[cache_key] = (
                meter.customer_mapping.event_payload_key,
                meter.value_settings.event_payload_key,
            )
        return self._payload_keys[cache_key]

    async def send(
        self, account: StripeAccount, pushes: Sequence[WirePush]
    ) -> list[StripeCallError | None]:
        """Send each push; errors are raised (one push per call)."""
        for push in pushes:
            customer_key, value_key = await self.payload_keys(account, push.destination)
            params = {
                "event_name": push.destination.event_name,
                "payload": {
                    customer_key: push.stripe_customer_id,
                    value_key: wire_decimal(push.value),
                },
                "identifier": push.identifier,
                "timestamp": unix(push.stamp),
            }
            with map_stripe_errors():
                await account.client.v1.billing.meter_events.create_async(
                    params,  # type: ignore[arg-type]
                    options=options_for(push.destination, push.identifier),
                )
        return [None for _ in pushes]

    async def period_total(
        self, account: StripeAccount, destination: Destination, customer: str, period: Period
    ) -> Decimal | None:
        """The meter's event summary over the period (minute-aligned outward)."""
        if destination.meter_id is None:
            return None
        start = unix(period.start) // MINUTE * MINUTE
        end = -(-unix(period.end) // MINUTE) * MINUTE
        return await self._summary(account, destination, customer, start, end)

    async def latest_event_minute(
        self,
        account: StripeAccount,
        destination: Destination,
        customer: str,
        period: Period,
        value: Decimal,
    ) -> datetime | None:
        """Binary search over minute-aligned summaries ``[m, end)`` of a ``last`` meter.

        Such a window shows ``value`` (the period's last value) exactly when it still holds the
        latest event, and nothing when ``m`` is past it; so the largest such ``m`` is the minute
        of the latest event, whoever sent it. A zero value cannot be told from an empty window:
        None. About log2(minutes in the period) reads, 16 for a month.
        """
        if destination.meter_id is None or value == 0:
            return None
        low = unix(period.start) // MINUTE * MINUTE
        end = -(-unix(period.end) // MINUTE) * MINUTE
        if await self._summary(account, destination, customer, low, end) != value:
            return None  # Stripe's total moved since it was read: let reconciliation re-run
        high = end  # invariant: [low, end) shows ``value``; [high, end) does not (or is empty)
        while high - low > MINUTE:
            middle = low + (high - low) // MINUTE // 2 * MINUTE
            if await self._summary(account, destination, customer, middle, end) == value:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(low, UTC)

    async def _summary(
        self, account: StripeAccount, destination: Destination, customer: str, start: int, end: int
    ) -> Decimal:
        query: dict[str, Any] = {"customer": customer, "start_time": start, "end_time": end}
        with map_stripe_errors():
            response = await account.client.raw_request_async(
                "get",
                f"/v1/billing/meters/{destination.meter_id}/event_summaries",
                **query,
                **options_for(destination),
            )
        # Parse the raw body: the stripe package reads JSON numbers as floats.
        page = json.loads(response.body, parse_float=Decimal)
        return sum((Decimal(str(s["aggregated_value"])) for s in page["data"]), Decimal(0))
