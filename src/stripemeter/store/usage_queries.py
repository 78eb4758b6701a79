"""Reads for usage history: counted events and event-bearing adjustments of one series, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import adjustments, events

STREAM_CHUNK = 1000  # rows per fetch when streaming a series


@dataclass(frozen=True, slots=True)
class CountedItem:
    """One thing that counts towards a series at a point in time."""

    quantity: Decimal
    at: datetime
    order_key: str


async def stream_counted_events(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    since: datetime,
    until: datetime,
) -> AsyncIterator[CountedItem]:
    """Accepted events of one series with a time in ``[since, until)``, oldest first, in chunks."""
    query = (
        select(events.c.quantity, events.c.ts, events.c.idempotency_key)
        .where(
            events.c.tenant_id == tenant_id,
            events.c.metric == metric,
            events.c.customer_ref == customer_ref,
            events.c.ts >= since,
            events.c.ts < until,
            events.c.status == "accepted",
        )
        .order_by(events.c.ts, events.c.id)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    result = await conn.stream(query)
    async for quantity, at, key in result:
        yield CountedItem(quantity, at, key)


async def approved_event_adjustments(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    since: datetime,
    until: datetime,
) -> list[CountedItem]:
    """Approved adjustments that count an event with a time in ``[since, until)``.

    The order key is the counted event's idempotency key, so ``last`` ties break as they would had the
    event been accepted on arrival; an adjustment whose event row is missing falls back to its own id.
    """
    rows = await conn.execute(
        select(
            adjustments.c.id,
            adjustments.c.delta,
            adjustments.c.event_ts,
            events.c.idempotency_key,
        )
        .select_from(
            adjustments.outerjoin(
                events,
                and_(
                    events.c.id == adjustments.c.event_id,
                    events.c.tenant_id == adjustments.c.tenant_id,
                ),
            )
        )
        .where(
            adjustments.c.tenant_id == tenant_id,
            adjustments.c.metric == metric,
            adjustments.c.customer_ref == customer_ref,
            adjustments.c.status == "approved",
            adjustments.c.event_ts >= since,
            adjustments.c.event_ts < until,
        )
        .order_by(adjustments.c.id)
    )
    return [
        CountedItem(delta, at, key if key is not None else f"adjustment:{adjustment_id}")
        for adjustment_id, delta, at, key in rows
    ]
