"""The pre-invoice parity gate: check a draft invoice against our totals before Stripe finalizes it.

On ``invoice.created`` (a draft of a subscription cycle) the gate pushes what is pending for the
customer, reconciles the period, then compares each usage line of the draft (quantity and amount)
with our counter and price. A line off by more than epsilon under policy ``hold`` keeps the invoice
in draft (``auto_advance=false``), raises an alert, repairs the drift through the reconciler,
re-reads the draft and releases it (``auto_advance=true``) once every line holds. Policy ``report``
only records. Every step is appended to the invoice's parity record and the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from stripe import RequestOptions

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.drift import LineParity, ReportStatus
from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.domain.pricing import price_from_stripe, price_line
from stripemeter.observability import metrics
from stripemeter.services import sync_store
from stripemeter.services.billing_cycles import BillingCycles
from stripemeter.services.reconciler import Reconciler, local_total
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store import audit, billing, cycles
from stripemeter.store import reconciliation as recon_store
from stripemeter.store.database import Database
from stripemeter.stripe.errors import StripeCallError, map_stripe_errors

log = structlog.get_logger("stripemeter.invoice_gate")

GATE_ACTOR = "system:invoice_gate"
SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
MAX_REPAIR_ROUNDS = 2


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def _at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


class InvoiceGate:
    """Handles Stripe's invoice and price events for the tenants whose customers they name."""

    def __init__(
        self,
        db: Database,
        accounts: StripeAccounts,
        reconciler: Reconciler,
        *,
        price_updated: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.reconciler = reconciler
        self.price_updated = price_updated
        self.clock = clock
        self.cycles = BillingCycles(db, accounts, clock=lambda: self.clock())

    async def handle(self, event: dict[str, Any], tenant_hint: str | None) -> str:
        """Act on one Stripe event; returns ``done`` or ``ignored``."""
        kind = event.get("type")
        obj = (event.get("data") or {}).get("object") or {}
        if kind == "price.updated" or kind == "price.deleted":
            if self.price_updated is not None and obj.get("id"):
                self.price_updated(str(obj["id"]))
            return "done"
        if kind not in (
            "invoice.upcoming",
            "invoice.created",
            "invoice.finalized",
            *SUBSCRIPTION_EVENTS,
        ):
            return "ignored"
        customer = obj.get("customer")
        if not customer:
            return "ignored"
        async with self.db.read() as conn:
            owners = await billing.customers_for_stripe_id(conn, str(customer), tenant_hint)
        if not owners:
            log.info("webhook_unknown_customer", type=kind, customer=customer)
            return "ignored"
        if kind in SUBSCRIPTION_EVENTS:
            # The customer's billing cycle may have changed: ask Stripe now (all its
            # subscriptions decide), store it and re-key the counters in one transaction.
            for tenant_id, customer_ref in owners:
                await self.cycles.refresh(tenant_id, customer_ref, source="webhook", force=True)
            return "done"
        period = Period(_at(int(obj["period_start"])), _at(int(obj["period_end"])))
        for tenant_id, customer_ref in owners:
            if kind == "invoice.upcoming":
                # The open period is the one the upcoming invoice will bill.
                await self.reconciler.pusher.flush(tenant_id, customer_ref)
                await self.reconciler.run(
                    tenant_id,
                    customer_ref=customer_ref,
                    period=period,
                    trigger="webhook",
                    wait=True,
                )
            elif kind == "invoice.created":
                if obj.get("status") == "draft" and obj.get("billing_reason") in (
                    "subscription_cycle",
                    "subscription_create",
                    "subscription_update",
                ):
                    await self.check_draft(tenant_id, customer_ref, str(obj["id"]), period)
            else:
                await self.close(tenant_id, customer_ref, str(obj["id"]), period)
        return "done"

    # --- invoice.finalized ------------------------------------------------------------------

    async def close(
        self, tenant_id: str, customer_ref: str, invoice_id: str, period: Period
    ) -> None:
        """Close the period: later events are held, corrections become true-ups."""
        now = self.clock()
        async with self.db.write() as conn:
            await billing.close_period(conn, tenant_id, customer_ref, period, invoice_id, now)
            parity = await billing.get_parity(conn, tenant_id, invoice_id)
            if parity is not None:
                actions = [*parity["actions"], _action(now, "finalized")]
                await billing.set_parity_status(conn, invoice_id, "finalized", actions, now)
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=GATE_ACTOR,
                action="period.closed",
                target_type="invoice",
                target_id=invoice_id,
                details={"customerRef": customer_ref, "period": period.label},
                request_id=None,
                now=now,
            )

    # --- invoice.created --------------------------------------------------------------------

    async def check_draft(
        self, tenant_id: str, customer_ref: str, invoice_id: str, period: Period
    ) -> dict[str, Any]:
        """Flush, reconcile, compare the draft's lines; hold, repair and release as the policy says."""
        settings = await self.reconciler.settings_for(tenant_id)
        policy = settings[recon_store.TENANT_SCOPE].gate_policy
        async with self.db.read() as conn:
            parity = await billing.get_parity(conn, tenant_id, invoice_id)
        actions: list[dict[str, Any]] = list(parity["actions"]) if parity else []
        flushed = await self.reconciler.pusher.flush(tenant_id, customer_ref)
        actions.append(_action(self.clock(), "flushed", pushes=flushed.results))
        await self.reconciler.run(
            tenant_id, customer_ref=customer_ref, period=period, trigger="webhook", wait=True
        )
        lines, holds = await self._compare(tenant_id, customer_ref, invoice_id, period, settings)
        status = "ok" if holds else ("held" if policy == "hold" else "mismatch")
        now = self.clock()
        actions.append(_action(now, "compared", parity=holds))
        was_held = parity is not None and parity["status"] == "held"
        if not holds and policy == "hold" and not was_held:
            await self._set_auto_advance(invoice_id, False)
            actions.append(_action(self.clock(), "held", auto_advance=False))
            await self._alert(tenant_id, invoice_id, customer_ref, period, lines)
        await self._save(
            tenant_id, invoice_id, customer_ref, period, policy, status, lines, actions
        )
        metrics.invoice_gate.labels("ok" if holds else status).inc()
        if not holds and policy == "hold":
            return await self.repair(tenant_id, invoice_id)
        return {"status": status, "lines": lines}

    async def repair(self, tenant_id: str, invoice_id: str) -> dict[str, Any]:
        """Apply the suggestions of the held invoice's drifting rows, re-verify, release on parity."""
        async with self.db.read() as conn:
            parity = await billing.get_parity(conn, tenant_id, invoice_id)
        if parity is None:
            return {"status": "unknown"}
        customer_ref = parity["customer_ref"]
        period = Period(parity["period_start"], parity["period_end"])
        actions: list[dict[str, Any]] = list(parity["actions"])
        settings = await self.reconciler.settings_for(tenant_id)
        lines: list[dict[str, Any]] = parity["lines"]
        holds = False
        for _ in range(MAX_REPAIR_ROUNDS):
            result = await self.reconciler.run(
                tenant_id, customer_ref=customer_ref, period=period, trigger="webhook", wait=True
            )
            async with self.db.read() as conn:
                suggestions = await recon_store.suggestions_for(
                    conn, tenant_id, [r.id for r in result.reports]
                )
            for report in result.reports:
                found = suggestions.get(report.id)
                if report.status != ReportStatus.DRIFT.value or found is None:
                    continue
                if found.status != "open":
                    continue
                try:
                    outcome = await self.reconciler.apply_suggestion(
                        tenant_id, found.id, actor=GATE_ACTOR
                    )
                except Exception as exc:  # one failed repair must not stop the others
                    outcome = {"error": repr(exc)}
                actions.append(
                    _action(
                        self.clock(),
                        "repaired",
                        suggestion=found.id,
                        kind=found.kind,
                        delta=str(found.delta),
                        outcome=_plain(outcome),
                    )
                )
            lines, holds = await self._compare(
                tenant_id, customer_ref, invoice_id, period, settings
            )
            actions.append(_action(self.clock(), "reverified", parity=holds))
            if holds:
                break
        status = "held"
        if holds:
            await self._set_auto_advance(invoice_id, True)
            actions.append(_action(self.clock(), "released", auto_advance=True))
            status = "released"
            async with self.db.write() as conn:
                await billing.resolve_alerts(
                    conn, tenant_id, "invoice_parity", invoice_id, self.clock()
                )
            metrics.invoice_gate.labels("released").inc()
        await self._save(
            tenant_id, invoice_id, customer_ref, period, parity["policy"], status, lines, actions
        )
        return {"status": status, "lines": lines}

    async def recheck_held(self) -> int:
        """Try again to repair and release every held invoice (after an outage, say)."""
        async with self.db.read() as conn:
            held = await billing.held_invoices(conn, 100)
        released = 0
        for row in held:
            try:
                result = await self.repair(row["tenant_id"], row["invoice_id"])
            except Exception:
                log.exception("held_invoice_recheck_failed", invoice=row["invoice_id"])
                continue
            released += result["status"] == "released"
        return released

    async def _compare(
        self,
        tenant_id: str,
        customer_ref: str,
        invoice_id: str,
        period: Period,
        settings: dict[str, recon_store.Settings],
    ) -> tuple[list[dict[str, Any]], bool]:
        """Each usage line of the invoice as Stripe has it now, against our counter and price."""
        account = self.accounts.live
        assert account is not None
        with map_stripe_errors():
            response = await account.client.raw_request_async("get", f"/v1/invoices/{invoice_id}")
        invoice = json.loads(response.body, parse_float=Decimal)
        async with self.db.read() as conn:
            mappings = await sync_store.list_mappings(conn, tenant_id, active=True)
            local_period = _our_period(period, await cycles.cycle_of(conn, tenant_id, customer_ref))
        by_price = {m.price_id: m for m in mappings if m.price_id}
        by_item = {m.subscription_item_id: m for m in mappings if m.subscription_item_id}
        lines: list[dict[str, Any]] = []
        holds = True
        for line in invoice["lines"]["data"]:
            details = (line.get("parent") or {}).get("subscription_item_details")
            if not details:
                continue
            price_id = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
            mapping = (by_price.get(price_id) if price_id else None) or by_item.get(
                details.get("subscription_item")
            )
            if mapping is None:
                continue
            stripe_quantity = Decimal(
                str(line.get("quantity_decimal") or line.get("quantity") or 0)
            )
            async with self.db.read() as conn:
                key = recon_store.ReportKey(
                    tenant_id, mapping.metric, mapping.id, "live", customer_ref, local_period
                )
                local = await local_total(conn, key, Aggregation(mapping.aggregation))
            expected = await self._expected_amount(mapping, price_id, local)
            parity = LineParity(stripe_quantity, local, int(line["amount"]), expected)
            epsilon = settings.get(mapping.id, settings[recon_store.TENANT_SCOPE]).epsilon
            ok = parity.holds(epsilon)
            holds = holds and ok
            lines.append(
                {
                    "lineId": line.get("id"),
                    "metric": mapping.metric,
                    "mappingId": mapping.id,
                    "price": price_id,
                    "stripeQuantity": str(stripe_quantity),
                    "localQuantity": str(local),
                    "stripeAmount": int(line["amount"]),
                    "expectedAmount": expected,
                    "driftPct": str(parity.quantity_drift.relative),
                    "parity": ok,
                }
            )
        return lines, holds

    async def _expected_amount(
        self, mapping: sync_store.PriceMapping, price_id: str | None, quantity: Decimal
    ) -> int | None:
        account = self.accounts.live
        wanted = price_id or mapping.price_id
        if account is None or not wanted:
            return None
        try:
            with map_stripe_errors():
                price = await account.client.v1.prices.retrieve_async(wanted, {"expand": ["tiers"]})
            return price_line(price_from_stripe(price.to_dict()), max(quantity, Decimal(0))).amount
        except (StripeCallError, ValueError):
            return None

    async def _set_auto_advance(self, invoice_id: str, value: bool) -> None:
        account = self.accounts.live
        assert account is not None
        options: RequestOptions = {}
        with map_stripe_errors():
            await account.client.v1.invoices.update_async(
                invoice_id, {"auto_advance": value}, options
            )

    async def _alert(
        self,
        tenant_id: str,
        invoice_id: str,
        customer_ref: str,
        period: Period,
        lines: list[dict[str, Any]],
    ) -> None:
        now = self.clock()
        failing = [line for line in lines if not line["parity"]]
        async with self.db.write() as conn:
            await billing.raise_alert(
                conn,
                tenant_id=tenant_id,
                kind="invoice_parity",
                severity="critical",
                subject=invoice_id,
                message=(
                    f"draft invoice {invoice_id} for {customer_ref} ({period.label}) differs from "
                    f"our totals on {len(failing)} line(s); held for repair"
                ),
                details={"customerRef": customer_ref, "period": period.label, "lines": failing},
                now=now,
            )
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=GATE_ACTOR,
                action="invoice.held",
                target_type="invoice",
                target_id=invoice_id,
                details={"customerRef": customer_ref, "period": period.label, "lines": failing},
                request_id=None,
                now=now,
            )

    async def _save(
        self,
        tenant_id: str,
        invoice_id: str,
        customer_ref: str,
        period: Period,
        policy: str,
        status: str,
        lines: list[dict[str, Any]],
        actions: list[dict[str, Any]],
    ) -> None:
        async with self.db.write() as conn:
            customer = await sync_store.get_customer(conn, tenant_id, customer_ref)
            await billing.put_parity(
                conn,
                {
                    "invoice_id": invoice_id,
                    "tenant_id": tenant_id,
                    "stripe_customer_id": customer.stripe_customer_id if customer else "",
                    "customer_ref": customer_ref,
                    "period_start": period.start,
                    "period_end": period.end,
                    "policy": policy,
                    "status": status,
                    "lines": lines,
                    "actions": actions,
                },
                self.clock(),
            )
            if status == "released":
                await audit.record(
                    conn,
                    tenant_id=tenant_id,
                    actor=GATE_ACTOR,
                    action="invoice.released",
                    target_type="invoice",
                    target_id=invoice_id,
                    details={"customerRef": customer_ref, "period": period.label},
                    request_id=None,
                    now=self.clock(),
                )


def _our_period(invoiced: Period, cycle: BillingCycle | None) -> Period:
    """The customer's period an invoice bills: the same one, or for a subscription's short first
    period ``[start, anchor)`` the anchored period that ends with it (whose pushes it holds)."""
    if cycle is None:
        return invoiced
    ours = period_for(invoiced.start, cycle)
    return ours if ours.end == invoiced.end and ours.start <= invoiced.start else invoiced


def _action(at: datetime, what: str, **details: Any) -> dict[str, Any]:
    return {"at": at.isoformat(), "action": what, **details}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
