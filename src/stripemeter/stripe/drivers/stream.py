"""Billing Meters v2 stream: batches of up to 100 events per request over a session token.

High-volume mode. A session token lives 15 minutes; it is renewed a minute early, or at once when
Stripe says it expired. The stream validates events asynchronously, so "accepted" here means the
batch was accepted; an event Stripe refuses later shows up as drift in reconciliation. Batches
carry no Idempotency-Key (their composition changes between retries); each event's
``identifier`` is what deduplicates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from stripemeter.domain.periods import Period
from stripemeter.stripe.accounts import StripeAccount
from stripemeter.stripe.drivers.base import Destination, Driver, WirePush, options_for, wire_decimal
from stripemeter.stripe.drivers.meters import MeterEventsDriver
from stripemeter.stripe.errors import SessionExpired, StripeCallError, map_stripe_errors

MAX_BATCH = 100  # events per stream request (Stripe's limit)
RENEW_MARGIN = 60.0  # seconds before expiry that a session is renewed


def rfc3339(at: datetime) -> str:
    """v2's timestamp format."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class MeterEventStreamDriver(Driver):
    """v2 meter event stream with session renewal; totals are read like v1."""

    name = "meter_stream"
    batch_size = MAX_BATCH

    def __init__(self, meters: MeterEventsDriver | None = None) -> None:
        self._meters = meters or MeterEventsDriver()
        self._sessions: dict[str, tuple[str, float]] = {}

    async def _token(self, account: StripeAccount, *, renew: bool = False) -> str:
        cached = self._sessions.get(account.name)
        if cached is not None and not renew and cached[1] - RENEW_MARGIN > time.time():
            return cached[0]
        with map_stripe_errors():
            session = await account.client.v2.billing.meter_event_session.create_async()
        expires = datetime.fromisoformat(str(session.expires_at).replace("Z", "+00:00"))
        self._sessions[account.name] = (session.authentication_token, expires.timestamp())
        return session.authentication_token

    async def send(
        self, account: StripeAccount, pushes: Sequence[WirePush]
    ) -> list[StripeCallError | None]:
        """Send in batches of 100; renew the session once if Stripe says it expired."""
        for start in range(0, len(pushes), MAX_BATCH):
            chunk = pushes[start : start + MAX_BATCH]
            events = []
            for push in chunk:
                customer_key, value_key = await self._meters.payload_keys(account, push.destination)
                events.append(
                    {
                        "event_name": push.destination.event_name,
                        "identifier": push.identifier,
                        "timestamp": rfc3339(push.stamp),
                        "payload": {
                            customer_key: push.stripe_customer_id,
                            value_key: wire_decimal(push.value),
                        },
                    }
                )
            for attempt in (1, 2):
                token = await self._token(account, renew=attempt == 2)
                try:
                    with map_stripe_errors():
                        await account.client.v2.billing.meter_event_stream.create_async(
                            {"events": events},  # type: ignore[typeddict-item]
                            options={"api_key": token},
                        )
                    break
                except SessionExpired:
                    if attempt == 2:
                        raise
        return [None for _ in pushes]

    async def period_total(
        self, account: StripeAccount, destination: Destination, customer: str, period: Period
    ) -> Decimal | None:
        """Same as v1: the meter's event summary."""
        return await self._meters.period_total(account, destination, customer, period)

    async def latest_event_minute(
        self,
        account: StripeAccount,
        destination: Destination,
        customer: str,
        period: Period,
        value: Decimal,
    ) -> datetime | None:
        """Same as v1: searched in the meter's event summaries."""
        return await self._meters.latest_event_minute(account, destination, customer, period, value)


__all__ = ["MeterEventStreamDriver", "options_for"]
