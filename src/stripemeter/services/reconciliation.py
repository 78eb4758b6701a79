"""Reconciliation as one unit the app and the worker start: reconciler, gate, webhooks, flows."""

from __future__ import annotations

from collections.abc import Callable

from stripemeter.config import Settings
from stripemeter.services.adjustment_flow import AdjustmentFlow
from stripemeter.services.invoice_gate import InvoiceGate
from stripemeter.services.reconciler import Reconciler
from stripemeter.services.stripe_sync import StripeSync
from stripemeter.services.true_ups import TrueUps
from stripemeter.services.webhooks import WebhookInbox
from stripemeter.store.database import Database


class Reconciliation:
    """The reconciler and everything built on it, over the Stripe sync's accounts and pusher."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        sync: StripeSync,
        *,
        price_updated: Callable[[str], None] | None = None,
        run_loop: bool | None = None,
    ) -> None:
        self.reconciler = Reconciler(
            db,
            sync.accounts,
            sync.pusher,
            epsilon=settings.reconcile_epsilon,
            gate_policy=settings.invoice_gate_policy,
            allow_self_approval=settings.allow_self_approval,
            interval=settings.reconcile_interval_seconds,
            recheck_delay=settings.reconcile_recheck_seconds,
        )
        self.true_ups = TrueUps(db, sync.accounts)
        self.reconciler.true_up = self.true_ups.for_suggestion
        self.gate = InvoiceGate(db, sync.accounts, self.reconciler, price_updated=price_updated)
        self.webhooks = WebhookInbox(db, self.gate, settings.stripe_webhook_secrets)
        self.adjustments = AdjustmentFlow(db, sync.pusher, self.reconciler, self.true_ups)
        self.run_loop = settings.reconcile_enabled if run_loop is None else run_loop

    async def start(self) -> None:
        """Start the schedule and the webhook recovery sweep."""
        if self.run_loop:
            self.reconciler.start()
            self.webhooks.start()

    async def stop(self) -> None:
        """Stop both loops and let webhook handling in progress finish."""
        await self.reconciler.stop()
        await self.webhooks.stop()
