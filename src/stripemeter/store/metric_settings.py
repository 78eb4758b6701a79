"""Per-tenant metric settings: aggregation for billing, lateness window, unit, description."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import metric_settings


async def list_for_tenant(conn: AsyncConnection, tenant_id: str) -> list[RowMapping]:
    """Every configured metric of a tenant, by name."""
    query = (
        select(metric_settings)
        .where(metric_settings.c.tenant_id == tenant_id)
        .order_by(metric_settings.c.metric)
    )
    return list((await conn.execute(query)).mappings())


async def upsert(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    *,
    aggregation: str,
    lateness_window_seconds: int,
    unit: str,
    description: str,
    now: datetime,
) -> None:
    """Create or replace one metric's settings."""
    values = {
        "aggregation": aggregation,
        "lateness_window_seconds": lateness_window_seconds,
        "unit": unit,
        "description": description,
        "updated_at": now,
    }
    stmt = dialect.insert(conn, metric_settings).values(
        tenant_id=tenant_id, metric=metric, **values
    )
    stmt = stmt.on_conflict_do_update(index_elements=["tenant_id", "metric"], set_=values)
    await conn.execute(stmt)
