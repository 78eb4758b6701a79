"""A Stripe account as the pusher uses it: a client, its mode, its rate limiter and breaker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import stripe

from stripemeter.stripe.breaker import CircuitBreaker
from stripemeter.stripe.client import build_client, is_live_key
from stripemeter.stripe.limits import LIVE_RATE, TEST_RATE, TokenBucket

DEFAULT_ACCOUNT = "default"  # a mapping's stripeAccount when it bills the key's own account


@dataclass
class StripeAccount:
    """One API key (live or test mode) and the guards every call through it passes."""

    name: str
    client: stripe.StripeClient
    livemode: bool
    limiter: TokenBucket
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    fake: bool = False

    async def aclose(self) -> None:
        """Close the client's HTTP connections."""
        http = getattr(self.client._requestor, "_client", None)
        for name in ("_client_async", "_client"):
            inner = getattr(http, name, None)
            if inner is None:
                continue
            if name == "_client_async":
                await inner.aclose()
            else:
                inner.close()

    @classmethod
    def from_key(
        cls,
        name: str,
        api_key: str,
        *,
        api_base: str | None = None,
        meter_events_base: str | None = None,
        timeout: float = 20.0,
        live_rate: float = LIVE_RATE,
        test_rate: float = TEST_RATE,
        fake: bool = False,
        asgi_app: Any = None,
    ) -> StripeAccount:
        """Build the client and guards for a key; the key's prefix decides the rate limit."""
        livemode = is_live_key(api_key)
        return cls(
            name=name,
            client=build_client(
                api_key,
                api_base=api_base,
                meter_events_base=meter_events_base,
                timeout=timeout,
                asgi_app=asgi_app,
            ),
            livemode=livemode,
            limiter=TokenBucket(live_rate if livemode else test_rate),
            fake=fake,
        )


def connect_account(stripe_account: str | None) -> str | None:
    """The ``Stripe-Account`` header value for a mapping's account (None for the key's own)."""
    if not stripe_account or stripe_account == DEFAULT_ACCOUNT:
        return None
    return stripe_account
