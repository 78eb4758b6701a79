"""Stripe webhook events: recorded before they are answered, claimed and handled once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import stripe_webhook_events

MAX_ATTEMPTS = 8


async def record(
    conn: AsyncConnection,
    *,
    event_id: str,
    event_type: str,
    tenant_hint: str | None,
    livemode: bool,
    created: int | None,
    payload: str,
    now: datetime,
) -> bool:
    """Store a received event; False when this event id was already received (a replay)."""
    stmt = (
        dialect.insert(conn, stripe_webhook_events)
        .values(
            id=event_id,
            type=event_type,
            tenant_hint=tenant_hint,
            livemode=livemode,
            stripe_created=created,
            payload=payload,
            status="received",
            attempts=0,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return bool((await conn.execute(stmt)).rowcount)


async def claim(
    conn: AsyncConnection, event_id: str, owner: str, now: datetime, lease: timedelta
) -> RowMapping | None:
    """Lease one unhandled event for processing (None when done or leased by someone else)."""
    done = await conn.execute(
        update(stripe_webhook_events)
        .where(
            stripe_webhook_events.c.id == event_id,
            stripe_webhook_events.c.status.in_(("received", "failed")),
            stripe_webhook_events.c.attempts < MAX_ATTEMPTS,
            or_(
                stripe_webhook_events.c.lease_owner.is_(None),
                stripe_webhook_events.c.lease_expires_at < now,
            ),
        )
        .values(
            lease_owner=owner,
            lease_expires_at=now + lease,
            attempts=stripe_webhook_events.c.attempts + 1,
        )
    )
    if not done.rowcount:
        return None
    return (
        (
            await conn.execute(
                select(stripe_webhook_events).where(stripe_webhook_events.c.id == event_id)
            )
        )
        .mappings()
        .first()
    )


async def unhandled(conn: AsyncConnection, older_than: datetime, limit: int) -> list[str]:
    """Ids of events received before ``older_than`` and not handled yet (crash recovery)."""
    rows = await conn.execute(
        select(stripe_webhook_events.c.id)
        .where(
            stripe_webhook_events.c.status.in_(("received", "failed")),
            stripe_webhook_events.c.attempts < MAX_ATTEMPTS,
            stripe_webhook_events.c.received_at < older_than,
        )
        .order_by(stripe_webhook_events.c.received_at)
        .limit(limit)
    )
    return [r[0] for r in rows]


async def finish(
    conn: AsyncConnection, event_id: str, *, status: str, error: str | None, now: datetime
) -> None:
    """Record how handling ended and release the lease."""
    await conn.execute(
        update(stripe_webhook_events)
        .where(stripe_webhook_events.c.id == event_id)
        .values(
            status=status,
            error=error,
            processed_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


async def get(conn: AsyncConnection, event_id: str) -> RowMapping | None:
    """One event row."""
    return (
        (
            await conn.execute(
                select(stripe_webhook_events).where(stripe_webhook_events.c.id == event_id)
            )
        )
        .mappings()
        .first()
    )
