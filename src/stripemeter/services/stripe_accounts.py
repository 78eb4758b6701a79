"""The Stripe accounts this process pushes to: live, and test mode for shadow pushes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from stripemeter.config import Settings
from stripemeter.stripe.accounts import StripeAccount

log = structlog.get_logger("stripemeter.stripe")

FAKE_LIVE_KEY = "sk_live_fake_embedded"  # keys for the embedded FAKE Stripe only
FAKE_TEST_KEY = "sk_test_fake_embedded"


@dataclass
class StripeAccounts:
    """Live and shadow (test-mode) accounts; shadow is None without ``STRIPE_TEST_SECRET_KEY``."""

    live: StripeAccount | None
    shadow: StripeAccount | None
    fake_url: str | None = None

    @property
    def is_fake(self) -> bool:
        """Whether the accounts point at the embedded fake Stripe."""
        return self.fake_url is not None

    def for_target(self, target: str) -> StripeAccount | None:
        """The account a write-log target pushes to."""
        return self.shadow if target == "shadow" else self.live

    @classmethod
    def from_settings(
        cls, settings: Settings, *, fake_url: str | None = None, fake_app: Any = None
    ) -> StripeAccounts:
        """Build from settings; ``fake_url`` points both keys at a fake Stripe (no real key set).

        With ``fake_app`` the fake runs in this process and calls reach it without a socket.
        """
        api_base = fake_url or settings.stripe_api_base
        events_base = fake_url or settings.stripe_meter_events_base
        common = {
            "asgi_app": fake_app,
            "api_base": api_base,
            "meter_events_base": events_base,
            "timeout": settings.stripe_timeout_seconds,
            "live_rate": settings.stripe_live_rate,
            "test_rate": settings.stripe_test_rate,
            "fake": fake_url is not None,
        }
        live_key = (
            settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else None
        )
        test_key = (
            settings.stripe_test_secret_key.get_secret_value()
            if settings.stripe_test_secret_key
            else None
        )
        if fake_url is not None:
            live_key = live_key or FAKE_LIVE_KEY
            test_key = test_key or FAKE_TEST_KEY
        if live_key is None and api_base is not None:
            live_key = FAKE_LIVE_KEY  # a fake started separately (stripemeter fake-stripe)
        live = StripeAccount.from_key("live", live_key, **common) if live_key else None
        shadow = StripeAccount.from_key("shadow", test_key, **common) if test_key else None
        if shadow is not None and shadow.livemode:
            log.error("shadow_key_is_live", hint="STRIPE_TEST_SECRET_KEY must be a test-mode key")
            shadow = None
        return cls(live, shadow, fake_url)
