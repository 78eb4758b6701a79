"""The ledger read by period: what counts in one of a customer's periods, and where series live.

An accepted event counts in the period containing its time. An approved adjustment counts in the
period containing its booking instant: the time of the event it carries, else the start of the
period it was booked to (``coalesce(event_ts, period_start)``). Both rules hold under any cycle, so
the counters of any set of periods can be recomputed from here (replay, re-keying, the pusher).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import EMPTY, Aggregation, Contribution, fold_all
from stripemeter.domain.periods import Period
from stripemeter.store.counters import state_from_row
from stripemeter.store.tables import adjustments, counters, events

_booked_at = func.coalesce(adjustments.c.event_ts, adjustments.c.period_start)


def adjustment_contribution(row: RowMapping | dict[str, Any]) -> Contribution:
    """An approved adjustment: one carrying an event folds like that event; a pure one adds to the sum."""
    if row["event_id"] is not None and row["event_ts"] is not None:
        order_key = row["event_key"] or f"adjustment:{row['id']}"
        return Contribution(row["delta"], row["event_ts"], order_key)
    return Contribution(
        row["delta"], row["created_at"], f"adjustment:{row['id']}", counts_as_event=False
    )


async def approved_adjustments(
    conn: AsyncConnection, tenant_id: str, metric: str, customer_ref: str, period: Period
) -> list[RowMapping]:
    """Approved adjustments booked inside ``period``, oldest first, with their event's key."""
    joined = adjustments.outerjoin(
        events,
        and_(events.c.id == adjustments.c.event_id, events.c.tenant_id == adjustments.c.tenant_id),
    )
    rows = await conn.execute(
        select(
            adjustments.c.id,
            adjustments.c.delta,
            adjustments.c.event_id,
            adjustments.c.event_ts,
            adjustments.c.created_at,
            events.c.idempotency_key.label("event_key"),
        )
        .select_from(joined)
        .where(
            adjustments.c.tenant_id == tenant_id,
            adjustments.c.metric == metric,
            adjustments.c.customer_ref == customer_ref,
            adjustments.c.status == "approved",
            _booked_at >= period.start,
            _booked_at < period.end,
        )
        .order_by(adjustments.c.id)
    )
    return list(rows.mappings())


async def counted_events(
    conn: AsyncConnection, tenant_id: str, metric: str, customer_ref: str, period: Period
) -> list[tuple[Decimal, datetime, str]]:
    """(quantity, time, key) of the accepted events of one series inside ``period``."""
    rows = await conn.execute(
        select(events.c.quantity, events.c.ts, events.c.idempotency_key).where(
            events.c.tenant_id == tenant_id,
            events.c.metric == metric,
            events.c.customer_ref == customer_ref,
            events.c.ts >= period.start,
            events.c.ts < period.end,
            events.c.status == "accepted",
        )
    )
    return [(q, ts, key) for q, ts, key in rows]


async def contributions(
    conn: AsyncConnection, tenant_id: str, metric: str, customer_ref: str, period: Period
) -> list[Contribution]:
    """Everything that counts in one series' period, as ingest and approvals folded it."""
    items = [
        Contribution(q, at, key)
        for q, at, key in await counted_events(conn, tenant_id, metric, customer_ref, period)
    ]
    items.extend(
        adjustment_contribution(row)
        for row in await approved_adjustments(conn, tenant_id, metric, customer_ref, period)
    )
    return items


async def event_spans(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    metrics: Sequence[str] | None,
    customer_ref: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[str, str, datetime, datetime]]:
    """(metric, customer, first, last) times of accepted events, per period they were filed under.

    Each group is one period of the cycle in force at ingest, so it spans at most one interval:
    enumerating the current periods between ``first`` and ``last`` finds every current period with
    events, without reading the events themselves.
    """
    conditions = [events.c.tenant_id == tenant_id, events.c.status == "accepted"]
    if metrics:
        conditions.append(events.c.metric.in_(list(metrics)))
    if customer_ref is not None:
        conditions.append(events.c.customer_ref == customer_ref)
    if since is not None:
        conditions.append(events.c.ts >= since)
    if until is not None:
        conditions.append(events.c.ts < until)
    rows = await conn.execute(
        select(
            events.c.metric,
            events.c.customer_ref,
            func.min(events.c.ts),
            func.max(events.c.ts),
        )
        .where(and_(*conditions))
        .group_by(events.c.metric, events.c.customer_ref, events.c.period_start)
    )
    return [(m, c, _aware(first), _aware(last)) for m, c, first, last in rows]


async def adjustment_instants(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    metrics: Sequence[str] | None,
    customer_ref: str | None,
) -> list[tuple[str, str, datetime]]:
    """Distinct (metric, customer, booking instant) of approved adjustments."""
    query = (
        select(adjustments.c.metric, adjustments.c.customer_ref, _booked_at)
        .where(adjustments.c.tenant_id == tenant_id, adjustments.c.status == "approved")
        .distinct()
    )
    if metrics:
        query = query.where(adjustments.c.metric.in_(list(metrics)))
    if customer_ref is not None:
        query = query.where(adjustments.c.customer_ref == customer_ref)
    return [(m, c, _aware(at)) for m, c, at in await conn.execute(query)]


def _aware(value: Any) -> datetime:
    """An aggregate's instant as an aware UTC datetime, whatever the driver handed back."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def billing_value(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    period: Period,
    aggregation: Aggregation,
) -> Decimal:
    """The billing value of one series over a period: its counter's when a counter has exactly
    that period, else the same fold over the ledger (a period of another cycle than the counters').
    """
    row = (
        (
            await conn.execute(
                select(counters).where(
                    counters.c.tenant_id == tenant_id,
                    counters.c.metric == metric,
                    counters.c.customer_ref == customer_ref,
                    counters.c.period_start == period.start,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is not None and row["period_end"] == period.end:
        return state_from_row(row).value(aggregation)
    items = await contributions(conn, tenant_id, metric, customer_ref, period)
    return fold_all(EMPTY, items).value(aggregation)
