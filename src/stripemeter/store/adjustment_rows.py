"""Reading adjustments and moving them between statuses (create lives in ``adjustments``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import adjustments


async def get(conn: AsyncConnection, tenant_id: str, adjustment_id: int) -> RowMapping | None:
    """One adjustment of the tenant."""
    return (
        (
            await conn.execute(
                select(adjustments).where(
                    adjustments.c.tenant_id == tenant_id, adjustments.c.id == adjustment_id
                )
            )
        )
        .mappings()
        .first()
    )


async def list_page(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    status: str | None,
    metric: str | None,
    customer_ref: str | None,
    before_id: int | None,
    limit: int,
) -> list[RowMapping]:
    """A tenant's adjustments, newest first."""
    query = select(adjustments).where(adjustments.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(adjustments.c.status == status)
    if metric is not None:
        query = query.where(adjustments.c.metric == metric)
    if customer_ref is not None:
        query = query.where(adjustments.c.customer_ref == customer_ref)
    if before_id is not None:
        query = query.where(adjustments.c.id < before_id)
    rows = await conn.execute(query.order_by(adjustments.c.id.desc()).limit(limit))
    return list(rows.mappings())


async def move(
    conn: AsyncConnection,
    adjustment_id: int,
    *,
    expect: str,
    status: str,
    actor: str,
    now: datetime,
) -> bool:
    """Change the status if it is still ``expect`` (False when another decision came first)."""
    done = await conn.execute(
        update(adjustments)
        .where(adjustments.c.id == adjustment_id, adjustments.c.status == expect)
        .values(status=status, decided_by=actor, decided_at=now)
    )
    return bool(done.rowcount)


async def for_counter(
    conn: AsyncConnection, tenant_id: str, metric: str, customer_ref: str, period_start: datetime
) -> list[RowMapping]:
    """Every adjustment of one counter, oldest first (any status)."""
    rows = await conn.execute(
        select(adjustments)
        .where(
            adjustments.c.tenant_id == tenant_id,
            adjustments.c.metric == metric,
            adjustments.c.customer_ref == customer_ref,
            adjustments.c.period_start == period_start,
        )
        .order_by(adjustments.c.id)
    )
    return list(rows.mappings())
