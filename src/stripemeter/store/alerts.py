"""Alert rules, states, history, deliveries and customer limits: every statement, tenant-scoped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import (
    alert_deliveries,
    alert_events,
    alert_rules,
    alert_states,
    customer_limits,
)

StateKey = tuple[str, str, str]  # (rule id, customer ref or "", metric or "")

# --- rules ---------------------------------------------------------------------------------------


async def insert_rule(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Store a new rule."""
    await conn.execute(alert_rules.insert().values(**values))


async def get_rule(conn: AsyncConnection, tenant_id: str, rule_id: str) -> RowMapping | None:
    """One of the tenant's rules."""
    query = select(alert_rules).where(
        alert_rules.c.tenant_id == tenant_id, alert_rules.c.id == rule_id
    )
    return (await conn.execute(query)).mappings().first()


async def list_rules(
    conn: AsyncConnection, tenant_id: str, *, enabled_only: bool = False
) -> list[RowMapping]:
    """The tenant's rules, oldest first."""
    query = select(alert_rules).where(alert_rules.c.tenant_id == tenant_id)
    if enabled_only:
        query = query.where(alert_rules.c.enabled.is_(True))
    rows = await conn.execute(query.order_by(alert_rules.c.created_at, alert_rules.c.id))
    return list(rows.mappings())


async def update_rule(
    conn: AsyncConnection, tenant_id: str, rule_id: str, values: dict[str, Any]
) -> bool:
    """Change a rule; False when the tenant has no such rule."""
    result = await conn.execute(
        update(alert_rules)
        .where(alert_rules.c.tenant_id == tenant_id, alert_rules.c.id == rule_id)
        .values(**values)
    )
    return bool(result.rowcount)


async def delete_rule(conn: AsyncConnection, tenant_id: str, rule_id: str) -> bool:
    """Remove a rule and its states (the history stays); False when there was none."""
    result = await conn.execute(
        delete(alert_rules).where(alert_rules.c.tenant_id == tenant_id, alert_rules.c.id == rule_id)
    )
    await conn.execute(
        delete(alert_states).where(
            alert_states.c.tenant_id == tenant_id, alert_states.c.rule_id == rule_id
        )
    )
    return bool(result.rowcount)


async def tenants_with_rules(conn: AsyncConnection) -> list[str]:
    """Every tenant with at least one enabled rule."""
    rows = await conn.execute(
        select(alert_rules.c.tenant_id).where(alert_rules.c.enabled.is_(True)).distinct()
    )
    return sorted(r[0] for r in rows)


async def hard_cap_rules(conn: AsyncConnection, tenant_id: str) -> list[RowMapping]:
    """The tenant's enabled rules that enforce a cap at ingest."""
    query = select(alert_rules).where(
        alert_rules.c.tenant_id == tenant_id,
        alert_rules.c.enabled.is_(True),
        alert_rules.c.hard_cap.is_(True),
    )
    return list((await conn.execute(query)).mappings())


# --- states --------------------------------------------------------------------------------------


async def states_of_rules(
    conn: AsyncConnection, tenant_id: str, rule_ids: Iterable[str]
) -> dict[StateKey, RowMapping]:
    """Stored states of these rules, by (rule, customer, metric)."""
    ids = list(rule_ids)
    if not ids:
        return {}
    rows = await conn.execute(
        select(alert_states).where(
            alert_states.c.tenant_id == tenant_id, alert_states.c.rule_id.in_(ids)
        )
    )
    return {(r["rule_id"], r["customer_ref"], r["metric"]): r for r in rows.mappings()}


async def get_state(conn: AsyncConnection, tenant_id: str, state_id: int) -> RowMapping | None:
    """One of the tenant's states."""
    query = select(alert_states).where(
        alert_states.c.tenant_id == tenant_id, alert_states.c.id == state_id
    )
    return (await conn.execute(query)).mappings().first()


async def insert_state(conn: AsyncConnection, values: dict[str, Any]) -> int:
    """Store a new state; returns its id."""
    result = await conn.execute(alert_states.insert().values(**values).returning(alert_states.c.id))
    return int(result.scalar_one())


async def update_state(conn: AsyncConnection, state_id: int, values: dict[str, Any]) -> None:
    """Change a state the caller has read in this transaction."""
    await conn.execute(update(alert_states).where(alert_states.c.id == state_id).values(**values))


async def list_states(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    status: str | None,
    rule_id: str | None,
    customer_ref: str | None,
    metric: str | None,
    after_id: int | None,
    limit: int,
) -> list[RowMapping]:
    """The tenant's states, newest first."""
    query = select(alert_states).where(alert_states.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(alert_states.c.status == status)
    if rule_id is not None:
        query = query.where(alert_states.c.rule_id == rule_id)
    if customer_ref is not None:
        query = query.where(alert_states.c.customer_ref == customer_ref)
    if metric is not None:
        query = query.where(alert_states.c.metric == metric)
    if after_id is not None:
        query = query.where(alert_states.c.id < after_id)
    rows = await conn.execute(query.order_by(alert_states.c.id.desc()).limit(limit))
    return list(rows.mappings())


async def active_states_for(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, metric: str
) -> list[RowMapping]:
    """Firing states of one customer and metric (or of the customer as a whole)."""
    query = select(alert_states).where(
        alert_states.c.tenant_id == tenant_id,
        alert_states.c.customer_ref == customer_ref,
        or_(alert_states.c.metric == metric, alert_states.c.metric == ""),
        alert_states.c.status.in_(("triggered", "acknowledged")),
    )
    return list((await conn.execute(query.order_by(alert_states.c.id))).mappings())


# --- history -------------------------------------------------------------------------------------


async def insert_event(conn: AsyncConnection, values: dict[str, Any]) -> int:
    """Append one transition to the history; returns its id."""
    result = await conn.execute(alert_events.insert().values(**values).returning(alert_events.c.id))
    return int(result.scalar_one())


async def list_events(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    rule_id: str | None,
    state_id: int | None,
    customer_ref: str | None,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
    after_id: int | None,
    limit: int,
) -> list[RowMapping]:
    """The tenant's transitions, newest first; ``[since, until)`` on their time."""
    query = select(alert_events).where(alert_events.c.tenant_id == tenant_id)
    if rule_id is not None:
        query = query.where(alert_events.c.rule_id == rule_id)
    if state_id is not None:
        query = query.where(alert_events.c.state_id == state_id)
    if customer_ref is not None:
        query = query.where(alert_events.c.customer_ref == customer_ref)
    if kind is not None:
        query = query.where(alert_events.c.kind == kind)
    if since is not None:
        query = query.where(alert_events.c.created_at >= since)
    if until is not None:
        query = query.where(alert_events.c.created_at < until)
    if after_id is not None:
        query = query.where(alert_events.c.id < after_id)
    rows = await conn.execute(query.order_by(alert_events.c.id.desc()).limit(limit))
    return list(rows.mappings())


# --- deliveries ----------------------------------------------------------------------------------


async def insert_deliveries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Owe one notification per channel."""
    if rows:
        await conn.execute(alert_deliveries.insert(), list(rows))


async def any_due_delivery(conn: AsyncConnection, now: datetime) -> bool:
    """Whether some delivery is due (a cheap read before taking the write lock)."""
    query = (
        select(alert_deliveries.c.id)
        .where(
            alert_deliveries.c.status == "pending",
            alert_deliveries.c.next_attempt_at <= now,
            or_(
                alert_deliveries.c.lease_expires_at.is_(None),
                alert_deliveries.c.lease_expires_at < now,
            ),
        )
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


async def lease_deliveries(
    conn: AsyncConnection, owner: str, now: datetime, until: datetime, limit: int
) -> list[RowMapping]:
    """Claim due deliveries (pending, not leased by a live worker) for ``owner`` until ``until``."""
    due = and_(
        alert_deliveries.c.status == "pending",
        alert_deliveries.c.next_attempt_at <= now,
        or_(
            alert_deliveries.c.lease_expires_at.is_(None),
            alert_deliveries.c.lease_expires_at < now,
        ),
    )
    query = (
        select(alert_deliveries.c.id)
        .where(due)
        .order_by(alert_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = [r[0] for r in await conn.execute(query)]
    if not ids:
        return []
    await conn.execute(
        update(alert_deliveries)
        .where(alert_deliveries.c.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=until)
    )
    rows = await conn.execute(select(alert_deliveries).where(alert_deliveries.c.id.in_(ids)))
    return list(rows.mappings())


async def finish_delivery(
    conn: AsyncConnection, delivery_id: int, owner: str, values: dict[str, Any]
) -> bool:
    """Record an attempt's outcome and release the lease, if ``owner`` still holds it."""
    result = await conn.execute(
        update(alert_deliveries)
        .where(alert_deliveries.c.id == delivery_id, alert_deliveries.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, **values)
    )
    return bool(result.rowcount)


async def get_delivery(
    conn: AsyncConnection, tenant_id: str, delivery_id: int
) -> RowMapping | None:
    """One of the tenant's deliveries."""
    query = select(alert_deliveries).where(
        alert_deliveries.c.tenant_id == tenant_id, alert_deliveries.c.id == delivery_id
    )
    return (await conn.execute(query)).mappings().first()


async def retry_delivery(
    conn: AsyncConnection, tenant_id: str, delivery_id: int, now: datetime
) -> bool:
    """Send a failed delivery again now; False unless it is the tenant's and has failed."""
    result = await conn.execute(
        update(alert_deliveries)
        .where(
            alert_deliveries.c.tenant_id == tenant_id,
            alert_deliveries.c.id == delivery_id,
            alert_deliveries.c.status == "failed",
        )
        .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
    )
    return bool(result.rowcount)


async def list_deliveries(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    status: str | None,
    event_id: int | None,
    after_id: int | None,
    limit: int,
) -> list[RowMapping]:
    """The tenant's deliveries, newest first."""
    query = select(alert_deliveries).where(alert_deliveries.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(alert_deliveries.c.status == status)
    if event_id is not None:
        query = query.where(alert_deliveries.c.event_id == event_id)
    if after_id is not None:
        query = query.where(alert_deliveries.c.id < after_id)
    rows = await conn.execute(query.order_by(alert_deliveries.c.id.desc()).limit(limit))
    return list(rows.mappings())


async def count_deliveries(conn: AsyncConnection, status: str) -> int:
    """Deliveries in a status, every tenant (for gauges)."""
    query = select(func.count()).where(alert_deliveries.c.status == status)
    return int((await conn.execute(query)).scalar_one())


# --- customer limits -----------------------------------------------------------------------------


async def put_limit(
    conn: AsyncConnection,
    tenant_id: str,
    customer_ref: str,
    metric: str,
    value: Decimal,
    now: datetime,
) -> None:
    """Set a customer's limit on a metric."""
    stmt = dialect.insert(conn, customer_limits).values(
        tenant_id=tenant_id,
        customer_ref=customer_ref,
        metric=metric,
        limit_value=value,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "customer_ref", "metric"],
        set_={"limit_value": stmt.excluded.limit_value, "updated_at": stmt.excluded.updated_at},
    )
    await conn.execute(stmt)


async def delete_limit(
    conn: AsyncConnection, tenant_id: str, customer_ref: str, metric: str
) -> bool:
    """Remove a limit; False when there was none."""
    result = await conn.execute(
        delete(customer_limits).where(
            customer_limits.c.tenant_id == tenant_id,
            customer_limits.c.customer_ref == customer_ref,
            customer_limits.c.metric == metric,
        )
    )
    return bool(result.rowcount)


async def list_limits(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    customer_ref: str | None = None,
    metric: str | None = None,
) -> list[RowMapping]:
    """The tenant's limits, by customer then metric."""
    query = select(customer_limits).where(customer_limits.c.tenant_id == tenant_id)
    if customer_ref is not None:
        query = query.where(customer_limits.c.customer_ref == customer_ref)
    if metric is not None:
        query = query.where(customer_limits.c.metric == metric)
    rows = await conn.execute(
        query.order_by(customer_limits.c.customer_ref, customer_limits.c.metric)
    )
    return list(rows.mappings())
