"""Prices configured on a metric (Stripe's Price shape), for metrics priced without a Stripe price."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import metric_prices


async def get(conn: AsyncConnection, tenant_id: str, metric: str) -> RowMapping | None:
    """One metric's configured price, or None."""
    query = select(metric_prices).where(
        metric_prices.c.tenant_id == tenant_id, metric_prices.c.metric == metric
    )
    return (await conn.execute(query)).mappings().first()


async def list_for_tenant(conn: AsyncConnection, tenant_id: str) -> list[RowMapping]:
    """Every configured price of a tenant, by metric."""
    query = (
        select(metric_prices)
        .where(metric_prices.c.tenant_id == tenant_id)
        .order_by(metric_prices.c.metric)
    )
    return list((await conn.execute(query)).mappings())


async def upsert(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    *,
    currency: str,
    price: dict[str, Any],
    minimum_amount: int | None,
    maximum_amount: int | None,
    now: datetime,
) -> None:
    """Create or replace one metric's price."""
    values = {
        "currency": currency,
        "price": price,
        "minimum_amount": minimum_amount,
        "maximum_amount": maximum_amount,
        "updated_at": now,
    }
    stmt = dialect.insert(conn, metric_prices).values(tenant_id=tenant_id, metric=metric, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["tenant_id", "metric"], set_=values)
    await conn.execute(stmt)


async def remove(conn: AsyncConnection, tenant_id: str, metric: str) -> bool:
    """Delete one metric's price; False when there was none."""
    result = await conn.execute(
        delete(metric_prices).where(
            metric_prices.c.tenant_id == tenant_id, metric_prices.c.metric == metric
        )
    )
    return bool(result.rowcount)
