"""What alert rules measure: counters, recent events, held events, the write log, drift reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import (
    counters,
    event_reviews,
    events,
    price_mappings,
    push_log,
    reconciliation_reports,
)

STREAM_CHUNK = 2000


async def counters_in_period(
    conn: AsyncConnection,
    tenant_id: str,
    at: datetime,
    *,
    metric: str | None,
    customer_ref: str | None,
    customers: set[str] | None = None,
) -> list[RowMapping]:
    """Counter rows of the periods containing ``at`` (each customer's own: its billing cycle's or
    the calendar month), optionally one metric and one customer (or a set of them)."""
    query = select(counters).where(
        counters.c.tenant_id == tenant_id,
        counters.c.period_start <= at,
        counters.c.period_end > at,
    )
    if metric is not None:
        query = query.where(counters.c.metric == metric)
    if customer_ref is not None:
        query = query.where(counters.c.customer_ref == customer_ref)
    if customers is not None:
        query = query.where(counters.c.customer_ref.in_(sorted(customers)))
    return list((await conn.execute(query)).mappings())


async def accepted_quantities(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    since: datetime,
    until: datetime,
    *,
    customer_ref: str | None,
) -> AsyncIterator[tuple[str, Decimal, datetime]]:
    """(customer, quantity, time) of the metric's counted events in ``[since, until)``."""
    query = select(events.c.customer_ref, events.c.quantity, events.c.ts).where(
        events.c.tenant_id == tenant_id,
        events.c.metric == metric,
        events.c.status == "accepted",
        events.c.ts >= since,
        events.c.ts < until,
    )
    if customer_ref is not None:
        query = query.where(events.c.customer_ref == customer_ref)
    result = await conn.stream(query.execution_options(yield_per=STREAM_CHUNK))
    async for customer, quantity, at in result:
        yield customer, quantity, at


async def pending_held(
    conn: AsyncConnection, tenant_id: str, *, customer_ref: str | None, metric: str | None
) -> int:
    """Held events of the tenant nobody has reviewed yet."""
    query = (
        select(func.count())
        .select_from(events.outerjoin(event_reviews, event_reviews.c.event_id == events.c.id))
        .where(
            events.c.tenant_id == tenant_id,
            events.c.status == "held",
            event_reviews.c.event_id.is_(None),
        )
    )
    if customer_ref is not None:
        query = query.where(events.c.customer_ref == customer_ref)
    if metric is not None:
        query = query.where(events.c.metric == metric)
    return int((await conn.execute(query)).scalar_one())


async def oldest_unpushed(
    conn: AsyncConnection, tenant_id: str, *, customer_ref: str | None, metric: str | None
) -> datetime | None:
    """The oldest counter change of the tenant Stripe has not confirmed (parked rows included)."""
    query = select(func.min(push_log.c.changed_at)).where(
        push_log.c.tenant_id == tenant_id,
        push_log.c.changed_at.is_not(None),
        or_(push_log.c.dirty.is_(True), push_log.c.status != "ok"),
    )
    if customer_ref is not None:
        query = query.where(push_log.c.customer_ref == customer_ref)
    if metric is not None:
        mapped = select(price_mappings.c.id).where(
            price_mappings.c.tenant_id == tenant_id, price_mappings.c.metric == metric
        )
        query = query.where(push_log.c.mapping_id.in_(mapped.scalar_subquery()))
    value = (await conn.execute(query)).scalar()
    return value if isinstance(value, datetime) else None


async def open_drift_reports(
    conn: AsyncConnection, tenant_id: str, *, customer_ref: str | None, metric: str | None
) -> list[RowMapping]:
    """Current reconciliation reports of periods not yet closed."""
    query = select(
        reconciliation_reports.c.customer_ref,
        reconciliation_reports.c.metric,
        reconciliation_reports.c.status,
        reconciliation_reports.c.drift_abs,
        reconciliation_reports.c.drift_pct,
    ).where(
        reconciliation_reports.c.tenant_id == tenant_id,
        reconciliation_reports.c.closed.is_(False),
    )
    if customer_ref is not None:
        query = query.where(reconciliation_reports.c.customer_ref == customer_ref)
    if metric is not None:
        query = query.where(reconciliation_reports.c.metric == metric)
    return list((await conn.execute(query)).mappings())
