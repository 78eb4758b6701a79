"""Explain a billed number: the invoice line (or our counter) down to every contribution."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from stripemeter.domain.periods import Period, period_named
from stripemeter.services import sync_store
from stripemeter.services.reconciler import Reconciler
from stripemeter.store import adjustment_rows, billing, cycles, period_ledger
from stripemeter.store import reconciliation as recon_store
from stripemeter.store.tables import events, push_log


async def explain(
    reconciler: Reconciler,
    tenant_id: str,
    customer_ref: str,
    metric: str,
    period: Period,
    *,
    after_id: int | None,
    limit: int,
) -> dict[str, Any]:
    """Counter, invoice lines, events (paginated), adjustments, pushes, true-ups, reports.

    A calendar month names the customer's billing period that starts in it (its Stripe cycle's).
    """
    db = reconciler.db
    async with db.read() as conn:
        if period == period_named(period.label):
            period = period_named(
                period.label, await cycles.cycle_of(conn, tenant_id, customer_ref)
            )
        mappings = await sync_store.list_mappings(conn, tenant_id, metric=metric)
        query = (
            select(events)
            .where(
                events.c.tenant_id == tenant_id,
                events.c.metric == metric,
                events.c.customer_ref == customer_ref,
                events.c.ts >= period.start,
                events.c.ts < period.end,
            )
            .order_by(events.c.id)
            .limit(limit + 1)
        )
        if after_id is not None:
            query = query.where(events.c.id > after_id)
        rows = list((await conn.execute(query)).mappings())
        adjusted = await adjustment_rows.for_counter(
            conn, tenant_id, metric, customer_ref, period.start
        )
        pushes = list(
            (
                await conn.execute(
                    select(push_log).where(
                        push_log.c.tenant_id == tenant_id,
                        push_log.c.customer_ref == customer_ref,
                        push_log.c.mapping_id.in_([m.id for m in mappings]),
                        push_log.c.period_start < period.end,
                        push_log.c.period_end > period.start,
                    )
                )
            ).mappings()
        )
        trued = await billing.true_ups_of(conn, tenant_id, metric, customer_ref, period.start)
        reports = await recon_store.list_reports(
            conn,
            tenant_id,
            since=period.start,
            until=period.end,
            customer_ref=customer_ref,
            metric=metric,
        )
        history = await recon_store.history_of(conn, tenant_id, [r.id for r in reports], 20)
        invoices = await billing.parity_for_customer(conn, tenant_id, customer_ref, None)
        counter_total = None
        if mappings:
            counter_total = await period_ledger.billing_value(
                conn, tenant_id, metric, customer_ref, period, mappings[0].aggregation_kind
            )
    page = rows[:limit]
    lines = [
        {"invoiceId": p["invoice_id"], "status": p["status"], **line}
        for p in invoices
        if p["period_start"] < period.end and p["period_end"] > period.start
        for line in p["lines"]
        if line.get("metric") == metric
    ]
    return {
        "customerRef": customer_ref,
        "metric": metric,
        "period": period.label,
        "total": counter_total,
        "invoiceLines": lines,
        "events": [
            {
                "id": int(e["id"]),
                "ts": e["ts"],
                "quantity": e["quantity"],
                "status": e["status"],
                "heldReason": e["held_reason"],
                "idempotencyKey": e["idempotency_key"],
                "source": e["source"],
                "receivedAt": e["received_at"],
            }
            for e in page
        ],
        "nextCursor": int(page[-1]["id"]) if len(rows) > limit else None,
        "adjustments": [
            {
                "id": int(a["id"]),
                "delta": a["delta"],
                "reason": a["reason"],
                "status": a["status"],
                "eventId": a["event_id"],
                "createdAt": a["created_at"],
                "decidedBy": a["decided_by"],
            }
            for a in adjusted
        ],
        "pushes": [
            {
                "id": int(p["id"]),
                "mappingId": p["mapping_id"],
                "target": p["target"],
                "periodStart": p["period_start"],
                "pushedTotal": p["pushed_total"],
                "pushes": p["pushed_seq"],
                "status": p["status"],
                "identifier": p["identifier"],
                "updatedAt": p["updated_at"],
            }
            for p in pushes
        ],
        "trueUps": [
            {
                "id": int(t["id"]),
                "quantity": t["quantity"],
                "amount": t["amount"],
                "currency": t["currency"],
                "kind": t["kind"],
                "status": t["status"],
                "stripeId": t["stripe_id"],
                "invoiceId": t["invoice_id"],
                "createdAt": t["created_at"],
            }
            for t in trued
        ],
        "reconciliation": [
            {
                "reportId": r.id,
                "mappingId": r.key.mapping_id or None,
                "status": r.status,
                "localTotal": r.local_total,
                "stripeTotal": r.stripe_total,
                "checkedAt": r.checked_at,
                "history": [
                    {"status": h["status"], "stripeTotal": h["stripe_total"], "at": h["checked_at"]}
                    for h in history
                    if h["report_id"] == r.id
                ],
            }
            for r in reports
        ],
    }
