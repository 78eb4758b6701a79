"""True-ups: corrections of an invoiced period, billed on the next invoice or credited.

Stripe no longer changes a finalized invoice, so a correction for its period is priced as the
difference between the period's amount with and without it, and sent as an invoice item (the
customer owes more; it lands on their next invoice) or a credit note on the finalized invoice (they
were over-charged). Never a silent change: each one is a row here, in the audit log, and in Stripe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from stripe import RequestOptions

from stripemeter.domain.periods import Period
from stripemeter.domain.pricing import price_from_stripe, price_line
from stripemeter.services import sync_store
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store import audit, billing
from stripemeter.store import reconciliation as recon_store
from stripemeter.store.database import Database
from stripemeter.stripe.accounts import connect_account
from stripemeter.stripe.errors import StripeCallError, map_stripe_errors

log = structlog.get_logger("stripemeter.true_ups")


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


class TrueUps:
    """Prices and sends true-ups through the live Stripe account."""

    def __init__(
        self,
        db: Database,
        accounts: StripeAccounts,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.clock = clock

    async def create(
        self,
        tenant_id: str,
        mapping: sync_store.PriceMapping,
        customer_ref: str,
        period: Period,
        *,
        billed_quantity: Decimal,
        quantity: Decimal,
        source: str,
        actor: str,
    ) -> dict[str, Any]:
        """Record and send one true-up of ``quantity`` on top of ``billed_quantity``."""
        account = self.accounts.live
        if account is None:
            raise StripeCallError("Stripe is not configured")
        if not mapping.price_id:
            raise StripeCallError("the mapping has no price to price a true-up with")
        options: RequestOptions = {}
        connect = connect_account(mapping.stripe_account)
        if connect:
            options["stripe_account"] = connect
        keyed: RequestOptions = {**options}
        with map_stripe_errors():
            price = await account.client.v1.prices.retrieve_async(
                mapping.price_id,
                {"expand": ["tiers"]},
                options,
            )
        parsed = price_from_stripe(price.to_dict())
        before = price_line(parsed, max(billed_quantity, Decimal(0))).amount
        after = price_line(parsed, max(billed_quantity + quantity, Decimal(0))).amount
        amount = after - before
        currency = str(price.currency)
        now = self.clock()
        async with self.db.write() as conn:
            customer = await sync_store.get_customer(conn, tenant_id, customer_ref)
            invoice_id = await billing.closed_period_invoice(
                conn, tenant_id, customer_ref, period.start
            )
            true_up_id = await billing.insert_true_up(
                conn,
                {
                    "tenant_id": tenant_id,
                    "metric": mapping.metric,
                    "mapping_id": mapping.id,
                    "customer_ref": customer_ref,
                    "period_start": period.start,
                    "quantity": quantity,
                    "amount": amount,
                    "currency": currency,
                    "kind": "invoice_item" if amount >= 0 else "credit_note",
                    "source": source,
                    "invoice_id": invoice_id,
                },
                now,
            )
        if true_up_id is None:
            return {"action": "true_up", "status": "exists", "source": source}
        if customer is None:
            raise StripeCallError("no Stripe customer for this customerRef")
        keyed["idempotency_key"] = (
            "smtu_" + hashlib.sha256(f"{tenant_id}|{source}".encode()).hexdigest()[:40]
        )
        stripe_id: str | None = None
        status = "sent"
        error: str | None = None
        description = f"Usage correction {mapping.metric} {period.label}: {quantity:+} ({source})"
        try:
            if amount > 0:
                with map_stripe_errors():
                    item = await account.client.v1.invoice_items.create_async(
                        {
                            "customer": customer.stripe_customer_id,
                            "amount": amount,
                            "currency": currency,
                            "description": description,
                            "metadata": {"stripemeter_true_up": str(true_up_id)},
                            "period": {
                                "start": int(period.start.timestamp()),
                                "end": int(period.end.timestamp()),
                            },
                        },
                        keyed,
                    )
                stripe_id = item.id
            elif amount < 0:
                if invoice_id is None:
                    raise StripeCallError("no finalized invoice is known for this period")
                with map_stripe_errors():
                    note = await account.client.v1.credit_notes.create_async(
                        {
                            "invoice": invoice_id,
                            "lines": [
                                {
                                    "type": "custom_line_item",
                                    "unit_amount": -amount,
                                    "quantity": 1,
                                    "description": description,
                                }
                            ],
                            "metadata": {"stripemeter_true_up": str(true_up_id)},
                        },
                        keyed,
                    )
                stripe_id = note.id
        except StripeCallError as exc:
            status, error = "failed", exc.reason
        async with self.db.write() as conn:
            await billing.mark_true_up(
                conn,
                true_up_id,
                {"status": status, "stripe_id": stripe_id, "error": error, "sent_at": self.clock()},
            )
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="true_up.sent" if status == "sent" else "true_up.failed",
                target_type="true_up",
                target_id=str(true_up_id),
                details={
                    "metric": mapping.metric,
                    "customerRef": customer_ref,
                    "period": period.label,
                    "quantity": str(quantity),
                    "amount": amount,
                    "currency": currency,
                    "stripeId": stripe_id,
                    "invoiceId": invoice_id,
                    "source": source,
                    "error": error,
                },
                request_id=None,
                now=self.clock(),
            )
        log.info("true_up", status=status, amount=amount, stripe_id=stripe_id, source=source)
        return {
            "action": "true_up",
            "trueUpId": true_up_id,
            "status": status,
            "amount": amount,
            "currency": currency,
            "stripeId": stripe_id,
            "error": error,
        }

    async def for_suggestion(
        self, report: recon_store.Report, suggestion: recon_store.Suggestion, actor: str
    ) -> dict[str, Any]:
        """The reconciler's true-up repair for a closed period."""
        key = report.key
        async with self.db.read() as conn:
            mapping = await sync_store.get_mapping(conn, key.tenant_id, key.mapping_id)
        if mapping is None or report.stripe_total is None:
            raise StripeCallError("the mapping or Stripe's total is gone")
        return await self.create(
            key.tenant_id,
            mapping,
            key.customer_ref,
            key.period,
            billed_quantity=report.stripe_total + report.trued_up,
            quantity=suggestion.delta,
            source=f"suggestion:{suggestion.id}:{suggestion.updated_at.isoformat()}",
            actor=actor,
        )
