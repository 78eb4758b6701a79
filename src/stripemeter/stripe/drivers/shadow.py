"""Shadow: the same pushes to a test-mode account, refusing any live-mode key.

A guard, not a protocol: it wraps the mapping's driver and checks the account before every call,
so a misconfigured key can never make a shadow push reach live invoices.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.periods import Period
from stripemeter.domain.pushes import ValueMode
from stripemeter.stripe.accounts import StripeAccount
from stripemeter.stripe.drivers.base import Destination, Driver, WirePush
from stripemeter.stripe.errors import AuthError, StripeCallError


class ShadowLiveKeyError(AuthError):
    """A shadow push was about to use a live-mode key."""


class ShadowDriver(Driver):
    """Delegates to ``inner`` after checking the account is in test mode."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.name = f"shadow:{inner.name}"
        self.batch_size = inner.batch_size
        self.whole_numbers = inner.whole_numbers
        self.fixed_stamps = inner.fixed_stamps

    def value_mode(self, aggregation: Aggregation) -> ValueMode:
        """As the wrapped driver."""
        return self.inner.value_mode(aggregation)

    def monotonic_stamps(self, aggregation: Aggregation) -> bool:
        """As the wrapped driver."""
        return self.inner.monotonic_stamps(aggregation)

    @staticmethod
    def check(account: StripeAccount) -> None:
        """Refuse a live-mode account."""
        if account.livemode:
            raise ShadowLiveKeyError("shadow pushes need a test-mode key", code="shadow_live_key")

    async def send(
        self, account: StripeAccount, pushes: Sequence[WirePush]
    ) -> list[StripeCallError | None]:
        """Send through the wrapped driver, test mode only."""
        self.check(account)
        return await self.inner.send(account, pushes)

    async def period_total(
        self, account: StripeAccount, destination: Destination, customer: str, period: Period
    ) -> Decimal | None:
        """Read through the wrapped driver, test mode only."""
        self.check(account)
        return await self.inner.period_total(account, destination, customer, period)

    async def latest_event_minute(
        self,
        account: StripeAccount,
        destination: Destination,
        customer: str,
        period: Period,
        value: Decimal,
    ) -> datetime | None:
        """Search through the wrapped driver, test mode only."""
        self.check(account)
        return await self.inner.latest_event_minute(account, destination, customer, period, value)
