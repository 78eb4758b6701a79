"""Counter rows: loading them as ``CounterState`` and writing them back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import CounterState
from stripemeter.domain.periods import Period
from stripemeter.store import dialect
from stripemeter.store.tables import counters

KEY_CHUNK = 300


@dataclass(frozen=True, slots=True, order=True)
class CounterKey:
    """Identifies one counter: (tenant, metric, customer, period start)."""

    tenant_id: str
    metric: str
    customer_ref: str
    period_start: datetime

    @property
    def lock_name(self) -> str:
        """The advisory-lock name that serialises writers of this counter."""
        return f"counter|{self.tenant_id}|{self.metric}|{self.customer_ref}|{self.period_start.isoformat()}"


def state_from_row(row: RowMapping) -> CounterState:
    """A row of ``counters`` as a domain value."""
    return CounterState(
        sum=row["sum"],
        max=row["max"],
        last=row["last"],
        last_at=row["last_ts"],
        last_key=row["last_key"],
        count=row["count"],
        watermark=row["watermark"],
    )


async def lock(conn: AsyncConnection, keys: Iterable[CounterKey]) -> None:
    """Serialise writers of these counters until the transaction ends."""
    await dialect.lock_names(conn, (key.lock_name for key in keys))


async def load(conn: AsyncConnection, keys: Iterable[CounterKey]) -> dict[CounterKey, CounterState]:
    """The stored state of each existing counter among ``keys``."""
    by_tenant: dict[str, list[CounterKey]] = {}
    for key in keys:
        by_tenant.setdefault(key.tenant_id, []).append(key)
    found: dict[CounterKey, CounterState] = {}
    for tenant_id, tenant_keys in by_tenant.items():
        for start in range(0, len(tenant_keys), KEY_CHUNK):
            chunk = tenant_keys[start : start + KEY_CHUNK]
            rows = await conn.execute(
                select(counters).where(
                    counters.c.tenant_id == tenant_id,
                    tuple_(counters.c.metric, counters.c.customer_ref, counters.c.period_start).in_(
                        [(k.metric, k.customer_ref, k.period_start) for k in chunk]
                    ),
                )
            )
            for row in rows.mappings():
                key = CounterKey(tenant_id, row["metric"], row["customer_ref"], row["period_start"])
                found[key] = state_from_row(row)
    return found


async def save(
    conn: AsyncConnection,
    states: Mapping[CounterKey, tuple[Period, CounterState]],
    now: datetime,
) -> None:
    """Upsert counters in key order (the order every writer uses)."""
    if not states:
        return
    rows: list[dict[str, Any]] = [
        {
            "tenant_id": key.tenant_id,
            "metric": key.metric,
            "customer_ref": key.customer_ref,
            "period_start": key.period_start,
            "period_end": period.end,
            "sum": state.sum,
            "max": state.max,
            "last": state.last,
            "last_ts": state.last_at,
            "last_key": state.last_key,
            "count": state.count,
            "watermark": state.watermark,
            "updated_at": now,
        }
        for key, (period, state) in sorted(states.items())
    ]
    stmt = dialect.insert(conn, counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "metric", "customer_ref", "period_start"],
        set_={
            name: stmt.excluded[name]
            for name in ("period_end", "sum", "max", "last", "last_ts", "last_key", "count",
                         "watermark", "updated_at")
        },
    )
    await conn.execute(stmt, rows)


async def for_customer(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, period_start: datetime
) -> list[RowMapping]:
    """Every counter of one customer in one period."""
    rows = await conn.execute(
        select(counters)
        .where(
            counters.c.tenant_id == tenant_id,
            counters.c.customer_ref == customer_ref,
            counters.c.period_start == period_start,
        )
        .order_by(counters.c.metric)
    )
    return list(rows.mappings())


async def for_period(
    conn: AsyncConnection,
    tenant_id: str,
    period_start: datetime,
    *,
    after_customer: str | None,
    limit: int,
) -> list[RowMapping]:
    """Counters of one period for customers after ``after_customer`` (ordered by customer)."""
    query = select(counters).where(
        counters.c.tenant_id == tenant_id, counters.c.period_start == period_start
    )
    if after_customer is not None:
        query = query.where(counters.c.customer_ref > after_customer)
    # Fetch whole customers: a limit on customers, not rows, is applied by the caller.
    customers = (
        select(counters.c.customer_ref)
        .where(counters.c.tenant_id == tenant_id, counters.c.period_start == period_start)
        .distinct()
        .order_by(counters.c.customer_ref)
        .limit(limit)
    )
    if after_customer is not None:
        customers = customers.where(counters.c.customer_ref > after_customer)
    query = query.where(counters.c.customer_ref.in_(customers.scalar_subquery()))
    rows = await conn.execute(query.order_by(counters.c.customer_ref, counters.c.metric))
    return list(rows.mappings())


async def in_scope(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    metrics: list[str] | None,
    customer_ref: str | None,
    period_starts: tuple[datetime, datetime] | None,
) -> list[CounterKey]:
    """Keys of stored counters matching a replay scope (period starts within the given bounds)."""
    query = select(counters.c.metric, counters.c.customer_ref, counters.c.period_start).where(
        counters.c.tenant_id == tenant_id
    )
    if metrics:
        query = query.where(counters.c.metric.in_(metrics))
    if customer_ref is not None:
        query = query.where(counters.c.customer_ref == customer_ref)
    if period_starts is not None:
        low, high = period_starts
        query = query.where(counters.c.period_start >= low, counters.c.period_start <= high)
    rows = await conn.execute(query)
    return [CounterKey(tenant_id, m, c, p) for m, c, p in rows]


async def delete(conn: AsyncConnection, keys: Iterable[CounterKey]) -> None:
    """Remove counters that replay found to have nothing behind them."""
    for key in keys:
        await conn.execute(
            counters.delete().where(
                counters.c.tenant_id == key.tenant_id,
                counters.c.metric == key.metric,
                counters.c.customer_ref == key.customer_ref,
                counters.c.period_start == key.period_start,
            )
        )
