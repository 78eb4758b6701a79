"""Legacy usage records: ``action=set`` with the period total on the customer's subscription item.

For accounts pinned to an API version before 2025-03-31.basil, where usage records still exist.
Usage records take whole, non-negative numbers: the period total is rounded half-up (0.5 → 1) and
a negative total is sent as 0. Rounding the total, never the deltas, keeps the error below one unit
whatever the number of pushes. Every push sets the quantity at one fixed timestamp per row, so a
replayed or repeated push replaces rather than adds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.periods import Period
from stripemeter.domain.pushes import ValueMode
from stripemeter.stripe.accounts import StripeAccount
from stripemeter.stripe.drivers.base import Destination, Driver, WirePush, options_for, unix
from stripemeter.stripe.errors import InvalidRequest, StripeCallError, map_stripe_errors


class UsageRecordsDriver(Driver):
    """``POST /v1/subscription_items/{id}/usage_records`` with ``action=set``."""

    name = "legacy"
    whole_numbers = True
    fixed_stamps = True

    def value_mode(self, aggregation: Aggregation) -> ValueMode:
        """Always the total: ``set`` replaces."""
        return ValueMode.ABSOLUTE

    def monotonic_stamps(self, aggregation: Aggregation) -> bool:
        """``set`` at one timestamp replaces, so stamps need not move."""
        return False

    async def send(
        self, account: StripeAccount, pushes: Sequence[WirePush]
    ) -> list[StripeCallError | None]:
        """Set each item's quantity (one call per push)."""
        for push in pushes:
            item = push.destination.subscription_item_id
            if not item:
                raise InvalidRequest("no subscription item for this customer", code="no_item")
            with map_stripe_errors():
                await account.client.raw_request_async(
                    "post",
                    f"/v1/subscription_items/{item}/usage_records",
                    quantity=int(push.value),
                    timestamp=unix(push.stamp),
                    action="set",
                    **options_for(push.destination, push.identifier),
                )
        return [None for _ in pushes]

    async def period_total(
        self, account: StripeAccount, destination: Destination, customer: str, period: Period
    ) -> Decimal | None:
        """The item's usage summary for the period that starts at or before ``period.start``."""
        item = destination.subscription_item_id
        if not item:
            return None
        with map_stripe_errors():
            response = await account.client.raw_request_async(
                "get",
                f"/v1/subscription_items/{item}/usage_record_summaries",
                limit=100,
                **options_for(destination),
            )
        page = json.loads(response.body, parse_float=Decimal)
        for summary in page["data"]:
            if summary["period"]["start"] <= unix(period.end) - 1 and (
                summary["period"]["end"] is None or summary["period"]["end"] > unix(period.start)
            ):
                return Decimal(summary["total_usage"])
        return Decimal(0)
