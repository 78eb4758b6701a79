"""The fake's running parts, shared by the Stripe routes, the control API and the middleware."""

from __future__ import annotations

from dataclasses import dataclass

from stripemeter.stripe.fake.clock import FakeClock
from stripemeter.stripe.fake.control import Control
from stripemeter.stripe.fake.state import FakeStripeState
from stripemeter.stripe.fake.webhooks import WebhookDispatcher


@dataclass
class FakeRuntime:
    """State, clock, control and webhook delivery of one fake Stripe server."""

    state: FakeStripeState
    clock: FakeClock
    control: Control
    webhooks: WebhookDispatcher
    state_file: str | None = None

    def persist(self) -> None:
        """Save the state when a file is configured."""
        if self.state_file:
            self.state.save(self.state_file)
