"""Adjustments (counted corrections) and reviews of held events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.counters import KEY_CHUNK, CounterKey
from stripemeter.store.tables import adjustments, event_reviews, events


async def insert_adjustment(
    conn: AsyncConnection,
    key: CounterKey,
    *,
    delta: Decimal,
    reason: str,
    status: str,
    note: str | None,
    event_id: int | None,
    event_ts: datetime | None,
    actor: str,
    now: datetime,
) -> int:
    """Store an adjustment and return its id."""
    decided = status in ("approved", "rejected")
    result = await conn.execute(
        adjustments.insert()
        .values(
            tenant_id=key.tenant_id,
            metric=key.metric,
            customer_ref=key.customer_ref,
            period_start=key.period_start,
            delta=delta,
            reason=reason,
            note=note,
            status=status,
            event_id=event_id,
            event_ts=event_ts,
            created_by=actor,
            created_at=now,
            decided_by=actor if decided else None,
            decided_at=now if decided else None,
        )
        .returning(adjustments.c.id)
    )
    return int(result.scalar_one())


async def approved_for(conn: AsyncConnection, key: CounterKey) -> list[RowMapping]:
    """Approved adjustments of one counter, oldest first."""
    rows = await conn.execute(
        select(adjustments)
        .where(
            adjustments.c.tenant_id == key.tenant_id,
            adjustments.c.metric == key.metric,
            adjustments.c.customer_ref == key.customer_ref,
            adjustments.c.period_start == key.period_start,
            adjustments.c.status == "approved",
        )
        .order_by(adjustments.c.id)
    )
    return list(rows.mappings())


async def approved_in_range(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    since: datetime,
    until: datetime,
) -> list[RowMapping]:
    """Approved adjustments that count an event with a time in ``[since, until)``."""
    rows = await conn.execute(
        select(adjustments).where(
            adjustments.c.tenant_id == tenant_id,
            adjustments.c.metric == metric,
            adjustments.c.customer_ref == customer_ref,
            adjustments.c.status == "approved",
            adjustments.c.event_ts >= since,
            adjustments.c.event_ts < until,
        )
    )
    return list(rows.mappings())


async def counter_keys_with_adjustments(conn: AsyncConnection, tenant_id: str) -> list[CounterKey]:
    """Every counter key that has an approved adjustment."""
    rows = await conn.execute(
        select(adjustments.c.metric, adjustments.c.customer_ref, adjustments.c.period_start)
        .where(adjustments.c.tenant_id == tenant_id, adjustments.c.status == "approved")
        .distinct()
    )
    return [CounterKey(tenant_id, m, c, p) for m, c, p in rows]


async def insert_review(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    event_id: int,
    decision: str,
    actor: str,
    note: str | None,
    adjustment_id: int | None,
    now: datetime,
) -> None:
    """Record the decision on a held event (the primary key makes a second decision fail)."""
    await conn.execute(
        event_reviews.insert().values(
            event_id=event_id,
            tenant_id=tenant_id,
            decision=decision,
            actor=actor,
            note=note,
            adjustment_id=adjustment_id,
            decided_at=now,
        )
    )


async def approved_contributions(
    conn: AsyncConnection, tenant_id: str, keys: Sequence[CounterKey]
) -> dict[CounterKey, list[RowMapping]]:
    """Approved adjustments of these counters, each with its event's idempotency key when it has one.

    Rows carry ``id``, ``delta``, ``event_id``, ``event_ts``, ``created_at`` and ``event_key`` (None
    for a pure adjustment), grouped by counter key; keys without adjustments are absent.
    """
    found: dict[CounterKey, list[RowMapping]] = {}
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start : start + KEY_CHUNK]
        joined = adjustments.outerjoin(
            events,
            and_(
                events.c.id == adjustments.c.event_id, events.c.tenant_id == adjustments.c.tenant_id
            ),
        )
        rows = await conn.execute(
            select(
                adjustments.c.id,
                adjustments.c.metric,
                adjustments.c.customer_ref,
                adjustments.c.period_start,
                adjustments.c.delta,
                adjustments.c.event_id,
                adjustments.c.event_ts,
                adjustments.c.created_at,
                events.c.idempotency_key.label("event_key"),
            )
            .select_from(joined)
            .where(
                adjustments.c.tenant_id == tenant_id,
                adjustments.c.status == "approved",
                tuple_(
                    adjustments.c.metric, adjustments.c.customer_ref, adjustments.c.period_start
                ).in_([(k.metric, k.customer_ref, k.period_start) for k in chunk]),
            )
            .order_by(adjustments.c.id)
        )
        for row in rows.mappings():
            key = CounterKey(tenant_id, row["metric"], row["customer_ref"], row["period_start"])
            found.setdefault(key, []).append(row)
    return found
