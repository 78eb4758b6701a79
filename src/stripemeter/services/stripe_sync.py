"""The Stripe sync as one unit the app and the worker start: accounts, services, the pusher.

Without a Stripe key (and without ``STRIPE_API_BASE``) the FAKE Stripe runs inside this process
and every Stripe call goes to it, so ``stripemeter serve`` works with nothing configured. It is
labelled as a fake in logs and in ``health()``.
"""

from __future__ import annotations

from typing import Any

import structlog

from stripemeter.config import Settings
from stripemeter.services.customers import CustomerService
from stripemeter.services.mappings import MappingService
from stripemeter.services.pusher import Hook, Pusher
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store.database import Database

log = structlog.get_logger("stripemeter.stripe")

EMBEDDED_FAKE_URL = "http://fake-stripe.embedded"  # the in-process fake has no socket


class StripeSync:
    """Mappings, customers and the pusher over one set of Stripe accounts."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        accounts: StripeAccounts | None = None,
        run_loop: bool | None = None,
        hook: Hook | None = None,
    ) -> None:
        self.settings = settings
        self.fake_app: Any = None
        if accounts is None:
            if settings.uses_fake_stripe:
                from stripemeter.stripe.fake.app import create_app as create_fake

                self.fake_app = create_fake()
                accounts = StripeAccounts.from_settings(
                    settings, fake_url=EMBEDDED_FAKE_URL, fake_app=self.fake_app
                )
            else:
                accounts = StripeAccounts.from_settings(settings)
        self.accounts = accounts
        self.mappings = MappingService(db, accounts)
        self.customers = CustomerService(db, accounts)
        self.pusher = Pusher(
            db,
            accounts,
            interval=settings.push_interval_seconds,
            batch_size=settings.push_batch_size,
            concurrency=settings.push_concurrency,
            lease_seconds=settings.push_lease_seconds,
            # Another worker's call to the same (customer, meter) lasts at most one timeout.
            call_slot_wait=settings.stripe_timeout_seconds + 5.0,
            meter_driver=settings.stripe_meter_driver,
            hook=hook,
        )
        self.run_loop = settings.push_enabled if run_loop is None else run_loop

    async def start(self) -> None:
        """Start the pusher loop (when enabled)."""
        if self.fake_app is not None:
            log.warning(
                "stripe_fake_in_use",
                message="No STRIPE_SECRET_KEY: using the embedded FAKE Stripe; nothing is billed",
            )
        elif self.accounts.shadow is None:
            log.info("stripe_shadow_disabled", reason="STRIPE_TEST_SECRET_KEY is not set")
        if self.run_loop:
            self.pusher.start()

    async def stop(self) -> None:
        """Stop the pusher loop and close Stripe connections."""
        await self.pusher.stop()
        for account in (self.accounts.live, self.accounts.shadow):
            if account is not None:
                await account.aclose()

    def health(self) -> dict[str, Any]:
        """A readiness check: which Stripe, and whether the pusher runs."""
        live = self.accounts.live
        return {
            "ok": live is not None and (not self.run_loop or self.pusher.running),
            "mode": "fake"
            if self.fake_app is not None or (live and live.fake)
            else ("live" if live and live.livemode else "test"),
            "fake": self.fake_app is not None,
            "pusher": "running" if self.pusher.running else "stopped",
            "breaker": live.breaker.state.name.lower() if live else None,
        }
