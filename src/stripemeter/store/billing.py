"""Invoice parity records, billing alerts, closed periods and true-ups."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.periods import Period
from stripemeter.store import dialect
from stripemeter.store.tables import billing_alerts, closed_periods, invoice_parity, true_ups

# --- closed periods ----------------------------------------------------------------------------


async def close_period(
    conn: AsyncConnection,
    tenant_id: str,
    customer_ref: str,
    period: Period,
    invoice_id: str | None,
    now: datetime,
) -> None:
    """Mark a customer's period closed (its invoice is finalized); idempotent."""
    stmt = dialect.insert(conn, closed_periods).values(
        tenant_id=tenant_id,
        customer_ref=customer_ref,
        period_start=period.start,
        period_end=period.end,
        invoice_id=invoice_id,
        closed_at=now,
    )
    await conn.execute(
        stmt.on_conflict_do_nothing(index_elements=["tenant_id", "customer_ref", "period_start"])
    )


async def closed_period_at(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, at: datetime
) -> Period | None:
    """The closed period containing ``at`` for this customer, if any.

    Ingest asks this to hold events for invoiced periods with reason ``period_closed``.
    """
    row = (
        await conn.execute(
            select(closed_periods.c.period_start, closed_periods.c.period_end).where(
                closed_periods.c.tenant_id == tenant_id,
                closed_periods.c.customer_ref == customer_ref,
                closed_periods.c.period_start <= at,
                closed_periods.c.period_end > at,
            )
        )
    ).first()
    return Period(row[0], row[1]) if row else None


async def is_closed(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, period: Period
) -> bool:
    """Whether a closed period overlaps ``period`` for this customer."""
    row = (
        await conn.execute(
            select(closed_periods.c.period_start).where(
                closed_periods.c.tenant_id == tenant_id,
                closed_periods.c.customer_ref == customer_ref,
                closed_periods.c.period_start < period.end,
                closed_periods.c.period_end > period.start,
            )
        )
    ).first()
    return row is not None


# --- parity ------------------------------------------------------------------------------------


async def get_parity(conn: AsyncConnection, tenant_id: str, invoice_id: str) -> RowMapping | None:
    """The parity record of an invoice of the tenant."""
    return (
        (
            await conn.execute(
                select(invoice_parity).where(
                    invoice_parity.c.tenant_id == tenant_id,
                    invoice_parity.c.invoice_id == invoice_id,
                )
            )
        )
        .mappings()
        .first()
    )


async def put_parity(conn: AsyncConnection, values: dict[str, Any], now: datetime) -> None:
    """Create or replace an invoice's parity record."""
    stmt = dialect.insert(conn, invoice_parity).values(created_at=now, updated_at=now, **values)
    changed = {k: v for k, v in values.items() if k != "invoice_id"}
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["invoice_id"], set_={**changed, "updated_at": now}
        )
    )


async def set_parity_status(
    conn: AsyncConnection, invoice_id: str, status: str, actions: list[Any], now: datetime
) -> None:
    """Update an invoice's parity status and action list."""
    await conn.execute(
        update(invoice_parity)
        .where(invoice_parity.c.invoice_id == invoice_id)
        .values(status=status, actions=actions, updated_at=now)
    )


async def parity_for_customer(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, period_start: datetime | None
) -> list[RowMapping]:
    """Parity records of a customer (optionally of the period starting at ``period_start``)."""
    query = select(invoice_parity).where(
        invoice_parity.c.tenant_id == tenant_id, invoice_parity.c.customer_ref == customer_ref
    )
    if period_start is not None:
        query = query.where(invoice_parity.c.period_start == period_start)
    return list((await conn.execute(query.order_by(invoice_parity.c.created_at))).mappings())


# --- alerts ------------------------------------------------------------------------------------


async def raise_alert(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    kind: str,
    severity: str,
    subject: str,
    message: str,
    details: dict[str, Any],
    now: datetime,
) -> int:
    """Record an alert; returns its id."""
    result = await conn.execute(
        billing_alerts.insert()
        .values(
            tenant_id=tenant_id,
            kind=kind,
            severity=severity,
            subject=subject,
            message=message,
            details=details,
            created_at=now,
        )
        .returning(billing_alerts.c.id)
    )
    return int(result.scalar_one())


async def resolve_alerts(
    conn: AsyncConnection, tenant_id: str, kind: str, subject: str, now: datetime
) -> None:
    """Resolve the open alerts of a kind about a subject."""
    await conn.execute(
        update(billing_alerts)
        .where(
            billing_alerts.c.tenant_id == tenant_id,
            billing_alerts.c.kind == kind,
            billing_alerts.c.subject == subject,
            billing_alerts.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )


async def list_alerts(conn: AsyncConnection, tenant_id: str, limit: int) -> list[RowMapping]:
    """A tenant's alerts, newest first."""
    rows = await conn.execute(
        select(billing_alerts)
        .where(billing_alerts.c.tenant_id == tenant_id)
        .order_by(billing_alerts.c.id.desc())
        .limit(limit)
    )
    return list(rows.mappings())


# --- true-ups ----------------------------------------------------------------------------------


async def insert_true_up(
    conn: AsyncConnection, values: dict[str, Any], now: datetime
) -> int | None:
    """Record a true-up to send; None when one with this source exists already."""
    stmt = (
        dialect.insert(conn, true_ups)
        .values(status="pending", created_at=now, **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "source"])
        .returning(true_ups.c.id)
    )
    value = (await conn.execute(stmt)).scalar()
    return int(value) if value is not None else None


async def mark_true_up(conn: AsyncConnection, true_up_id: int, values: dict[str, Any]) -> None:
    """Record a true-up's outcome."""
    await conn.execute(update(true_ups).where(true_ups.c.id == true_up_id).values(**values))


async def true_ups_of(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    period_start: datetime,
) -> list[RowMapping]:
    """True-ups of one counter, oldest first."""
    rows = await conn.execute(
        select(true_ups)
        .where(
            true_ups.c.tenant_id == tenant_id,
            true_ups.c.metric == metric,
            true_ups.c.customer_ref == customer_ref,
            true_ups.c.period_start == period_start,
        )
        .order_by(true_ups.c.id)
    )
    return list(rows.mappings())


async def trued_up_quantity(
    conn: AsyncConnection, tenant_id: str, metric: str, customer_ref: str, period_start: datetime
) -> Decimal:
    """Quantity billed outside the meter for a closed counter (sent or pending true-ups)."""
    rows = await conn.execute(
        select(true_ups.c.quantity).where(
            true_ups.c.tenant_id == tenant_id,
            true_ups.c.metric == metric,
            true_ups.c.customer_ref == customer_ref,
            true_ups.c.period_start == period_start,
            true_ups.c.status != "failed",
        )
    )
    return sum((r[0] for r in rows), Decimal(0))


async def count_true_ups(conn: AsyncConnection, tenant_id: str) -> int:
    """How many true-ups a tenant has."""
    value = (
        await conn.execute(select(func.count()).where(true_ups.c.tenant_id == tenant_id))
    ).scalar()
    return int(value or 0)


async def customers_for_stripe_id(
    conn: AsyncConnection, stripe_customer_id: str, tenant_id: str | None
) -> list[tuple[str, str]]:
    """(tenant, customerRef) pairs mapped to a Stripe customer (within one tenant when given)."""
    from stripemeter.store.tables import customer_mappings

    query = select(customer_mappings.c.tenant_id, customer_mappings.c.customer_ref).where(
        customer_mappings.c.stripe_customer_id == stripe_customer_id
    )
    if tenant_id is not None:
        query = query.where(customer_mappings.c.tenant_id == tenant_id)
    return [(r[0], r[1]) for r in await conn.execute(query)]


async def held_invoices(conn: AsyncConnection, limit: int) -> list[RowMapping]:
    """Parity records still holding their invoice."""
    rows = await conn.execute(
        select(invoice_parity).where(invoice_parity.c.status == "held").limit(limit)
    )
    return list(rows.mappings())


async def closed_period_invoice(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, period_start: datetime
) -> str | None:
    """The finalized invoice of a closed period."""
    row = (
        await conn.execute(
            select(closed_periods.c.invoice_id).where(
                closed_periods.c.tenant_id == tenant_id,
                closed_periods.c.customer_ref == customer_ref,
                closed_periods.c.period_start <= period_start,
                closed_periods.c.period_end > period_start,
            )
        )
    ).first()
    return row[0] if row else None


async def closed_periods_since(
    conn: AsyncConnection, tenant_ids: Collection[str], since: datetime
) -> dict[tuple[str, str], list[Period]]:
    """Closed periods ending after ``since``, by (tenant, customer): one query for a whole ingest group."""
    rows = await conn.execute(
        select(
            closed_periods.c.tenant_id,
            closed_periods.c.customer_ref,
            closed_periods.c.period_start,
            closed_periods.c.period_end,
        ).where(
            closed_periods.c.tenant_id.in_(list(tenant_ids)), closed_periods.c.period_end > since
        )
    )
    found: dict[tuple[str, str], list[Period]] = {}
    for tenant_id, customer_ref, start, end in rows:
        found.setdefault((tenant_id, customer_ref), []).append(Period(start, end))
    return found
