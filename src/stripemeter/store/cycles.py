"""Customers' billing cycles: which periods key a customer's counters, and the lock that guards them.

Every writer of a customer's counters holds the customer's cycle lock: ingest, replay, reviews and
adjustments share it (PostgreSQL ``pg_advisory_xact_lock_shared``), a change of the cycle (which
re-keys the customer's counters) takes it exclusively. Writers read the cycle after taking the lock,
so no counter is ever written under a cycle that another transaction has just replaced. SQLite has a
single writer, so there the lock is implicit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.store import dialect
from stripemeter.store.tables import billing_cycles, customer_mappings

KEY_CHUNK = 500
Customer = tuple[str, str]  # (tenant, customerRef)

_to_json = msgspec.json.Encoder()
# Constant statements (prepared once per connection), like the other ingest statements.
_PG_LOCK_SHARED = "SELECT count(pg_advisory_xact_lock_shared(x)) FROM unnest($1::bigint[]) AS x"
_PG_LOCK = "SELECT count(pg_advisory_xact_lock(x)) FROM unnest($1::bigint[]) AS x"
_PG_LOAD = (
    "SELECT customer_ref, anchor, interval, interval_count FROM billing_cycles"
    " WHERE tenant_id = $1 AND anchor IS NOT NULL"
    " AND customer_ref IN (SELECT json_array_elements_text($2::json))"
)


def lock_name(tenant_id: str, customer_ref: str) -> str:
    """The advisory-lock name of a customer's periods."""
    return f"cycle|{tenant_id}|{customer_ref}"


async def lock(conn: AsyncConnection, customers: Iterable[Customer], *, shared: bool) -> None:
    """Hold the customers' cycle locks until the transaction ends (sorted ids: no deadlock)."""
    if conn.dialect.name != "postgresql":
        return
    ids = sorted({dialect.lock_id(lock_name(t, c)) for t, c in customers})
    if ids:
        await conn.exec_driver_sql(_PG_LOCK_SHARED if shared else _PG_LOCK, (ids,))


class Periods:
    """The periods of a set of customers: their cycle's, or calendar months."""

    __slots__ = ("_cycles",)

    def __init__(self, cycles: Mapping[Customer, BillingCycle]) -> None:
        self._cycles = dict(cycles)

    def cycle(self, tenant_id: str, customer_ref: str) -> BillingCycle | None:
        """The customer's cycle, None for calendar months."""
        return self._cycles.get((tenant_id, customer_ref))

    def period(self, tenant_id: str, customer_ref: str, at: datetime) -> Period:
        """The customer's period containing ``at``."""
        return period_for(at, self._cycles.get((tenant_id, customer_ref)))


def _cycle(anchor: Any, interval: Any, count: Any) -> BillingCycle | None:
    if anchor is None or not interval:
        return None
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    return BillingCycle(anchor.astimezone(UTC), str(interval), int(count or 1))


async def load(
    conn: AsyncConnection, customers: Collection[Customer]
) -> dict[Customer, BillingCycle]:
    """The known cycles of these customers (one statement per tenant)."""
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, customer_ref in customers:
        by_tenant.setdefault(tenant_id, []).append(customer_ref)
    found: dict[Customer, BillingCycle] = {}
    for tenant_id, refs in by_tenant.items():
        unique = sorted(set(refs))
        if conn.dialect.name == "postgresql":
            result = await conn.exec_driver_sql(
                _PG_LOAD, (tenant_id, _to_json.encode(unique).decode())
            )
            rows: list[Any] = list(cast("list[Any]", result.all()))
        else:
            rows = []
            for start in range(0, len(unique), KEY_CHUNK):
                chunk = unique[start : start + KEY_CHUNK]
                result = await conn.execute(
                    select(
                        billing_cycles.c.customer_ref,
                        billing_cycles.c.anchor,
                        billing_cycles.c.interval,
                        billing_cycles.c.interval_count,
                    ).where(
                        billing_cycles.c.tenant_id == tenant_id,
                        billing_cycles.c.anchor.is_not(None),
                        billing_cycles.c.customer_ref.in_(chunk),
                    )
                )
                rows.extend(result.all())
        for ref, anchor, interval, count in rows:
            cycle = _cycle(anchor, interval, count)
            if cycle is not None:
                found[(tenant_id, ref)] = cycle
    return found


async def resolve(conn: AsyncConnection, customers: Collection[Customer]) -> Periods:
    """Lock the customers' periods (shared) and read their cycles: what a counter writer calls first."""
    await lock(conn, customers, shared=True)
    return Periods(await load(conn, customers) if customers else {})


async def for_tenant(
    conn: AsyncConnection, tenant_id: str, customer_ref: str | None = None
) -> dict[str, BillingCycle]:
    """Every known cycle of a tenant (or of one customer), by customerRef."""
    query = select(
        billing_cycles.c.customer_ref,
        billing_cycles.c.anchor,
        billing_cycles.c.interval,
        billing_cycles.c.interval_count,
    ).where(billing_cycles.c.tenant_id == tenant_id, billing_cycles.c.anchor.is_not(None))
    if customer_ref is not None:
        query = query.where(billing_cycles.c.customer_ref == customer_ref)
    found: dict[str, BillingCycle] = {}
    for ref, anchor, interval, count in await conn.execute(query):
        cycle = _cycle(anchor, interval, count)
        if cycle is not None:
            found[ref] = cycle
    return found


async def cycle_of(conn: AsyncConnection, tenant_id: str, customer_ref: str) -> BillingCycle | None:
    """One customer's cycle (None: calendar months). For reads; writers use ``resolve``."""
    return (await for_tenant(conn, tenant_id, customer_ref)).get(customer_ref)


@dataclass(frozen=True, slots=True)
class StoredCycle:
    """A ``billing_cycles`` row: the cycle (None: calendar months) and where it came from."""

    tenant_id: str
    customer_ref: str
    cycle: BillingCycle | None
    stripe_customer_id: str | None
    subscription_id: str | None
    source: str
    checked_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> StoredCycle:
        """Build from a row."""
        return cls(
            tenant_id=row["tenant_id"],
            customer_ref=row["customer_ref"],
            cycle=_cycle(row["anchor"], row["interval"], row["interval_count"]),
            stripe_customer_id=row["stripe_customer_id"],
            subscription_id=row["subscription_id"],
            source=row["source"],
            checked_at=row["checked_at"],
            updated_at=row["updated_at"],
        )


async def get(conn: AsyncConnection, tenant_id: str, customer_ref: str) -> StoredCycle | None:
    """The stored row of one customer."""
    row = (
        (
            await conn.execute(
                select(billing_cycles).where(
                    billing_cycles.c.tenant_id == tenant_id,
                    billing_cycles.c.customer_ref == customer_ref,
                )
            )
        )
        .mappings()
        .first()
    )
    return StoredCycle.from_row(row) if row else None


async def put(conn: AsyncConnection, stored: StoredCycle) -> None:
    """Create or replace a customer's row."""
    cycle = stored.cycle
    values = {
        "anchor": cycle.anchor if cycle else None,
        "interval": cycle.interval if cycle else None,
        "interval_count": cycle.count if cycle else None,
        "stripe_customer_id": stored.stripe_customer_id,
        "subscription_id": stored.subscription_id,
        "source": stored.source,
        "checked_at": stored.checked_at,
        "updated_at": stored.updated_at,
    }
    stmt = dialect.insert(conn, billing_cycles).values(
        tenant_id=stored.tenant_id, customer_ref=stored.customer_ref, **values
    )
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["tenant_id", "customer_ref"], set_=values)
    )


async def mark_stale(conn: AsyncConnection, tenant_id: str, customer_ref: str) -> None:
    """Make the next look at the customer ask Stripe again (the cycle itself stays until then)."""
    await conn.execute(
        update(billing_cycles)
        .where(
            billing_cycles.c.tenant_id == tenant_id,
            billing_cycles.c.customer_ref == customer_ref,
        )
        .values(checked_at=None)
    )


@dataclass(frozen=True, slots=True)
class CustomerCycle:
    """A mapped customer with its Stripe id and stored cycle row (None: never looked up)."""

    customer_ref: str
    stripe_customer_id: str
    stored: StoredCycle | None


async def mapped_customers(
    conn: AsyncConnection, tenant_id: str, refs: Collection[str]
) -> list[CustomerCycle]:
    """Customers among ``refs`` that have a Stripe customer mapping, with their stored cycle."""
    found: list[CustomerCycle] = []
    unique = sorted(set(refs))
    for start in range(0, len(unique), KEY_CHUNK):
        chunk = unique[start : start + KEY_CHUNK]
        joined = customer_mappings.outerjoin(
            billing_cycles,
            (billing_cycles.c.tenant_id == customer_mappings.c.tenant_id)
            & (billing_cycles.c.customer_ref == customer_mappings.c.customer_ref),
        )
        rows = await conn.execute(
            select(
                customer_mappings.c.customer_ref.label("mapped_ref"),
                customer_mappings.c.stripe_customer_id.label("mapped_stripe_id"),
                billing_cycles,
            )
            .select_from(joined)
            .where(
                customer_mappings.c.tenant_id == tenant_id,
                customer_mappings.c.customer_ref.in_(chunk),
            )
        )
        for row in rows.mappings():
            stored = StoredCycle.from_row(row) if row["tenant_id"] is not None else None
            found.append(CustomerCycle(row["mapped_ref"], row["mapped_stripe_id"], stored))
    return found
