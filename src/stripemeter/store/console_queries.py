"""Read-only aggregates for the admin console's overview, every one scoped to a tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import counters, customer_mappings, events, price_mappings, push_log


async def recent_events(
    conn: AsyncConnection, tenant_id: str, since: datetime, *, cap: int
) -> tuple[list[tuple[datetime, str]], bool]:
    """(received_at, status) of the tenant's newest events received since ``since``, at most ``cap``.

    Walks the (tenant, id) index backwards, so the cost is bounded by ``cap`` whatever the ledger's
    size; the flag says whether the cap cut the hour short.
    """
    newest = (
        select(events.c.received_at, events.c.status)
        .where(events.c.tenant_id == tenant_id)
        .order_by(events.c.id.desc())
        .limit(cap)
        .subquery()
    )
    rows = (await conn.execute(select(newest.c.received_at, newest.c.status))).all()
    inside = [(row[0], row[1]) for row in rows if row[0] >= since]
    truncated = len(rows) == cap and len(inside) == cap
    return inside, truncated


async def count_customers(conn: AsyncConnection, tenant_id: str, at: datetime) -> int:
    """Customers with at least one counter in their period containing ``at`` (each its own)."""
    query = select(func.count(func.distinct(counters.c.customer_ref))).where(
        counters.c.tenant_id == tenant_id,
        counters.c.period_start <= at,
        counters.c.period_end > at,
    )
    return int((await conn.execute(query)).scalar_one())


@dataclass(frozen=True, slots=True)
class PushHealth:
    """The tenant's write log at a glance."""

    rows: int
    pending: int  # a change or an intent waiting for Stripe
    failing: int  # parked, or retrying after an error
    parked: int
    mappings: int
    active_mappings: int
    customer_mappings: int


async def push_health(conn: AsyncConnection, tenant_id: str) -> PushHealth:
    """Counts of write-log rows by state, and of mappings."""
    parked = push_log.c.status == "parked"
    retrying = and_(push_log.c.attempts > 0, push_log.c.status != "parked")
    waiting = and_(
        or_(push_log.c.dirty.is_(True), push_log.c.status == "pending"),
        push_log.c.status != "parked",
    )
    row = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((waiting, 1), else_=0)), 0),
                func.coalesce(func.sum(case((or_(parked, retrying), 1), else_=0)), 0),
                func.coalesce(func.sum(case((parked, 1), else_=0)), 0),
            ).where(push_log.c.tenant_id == tenant_id)
        )
    ).one()
    mapping_row = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((price_mappings.c.active.is_(True), 1), else_=0)), 0),
            ).where(price_mappings.c.tenant_id == tenant_id)
        )
    ).one()
    customers = (
        await conn.execute(select(func.count()).where(customer_mappings.c.tenant_id == tenant_id))
    ).scalar_one()
    return PushHealth(
        rows=int(row[0]),
        pending=int(row[1]),
        failing=int(row[2]),
        parked=int(row[3]),
        mappings=int(mapping_row[0]),
        active_mappings=int(mapping_row[1]),
        customer_mappings=int(customers),
    )
