"""Every statement of the Stripe sync: mappings, customers, the write log, leases, the change scan.

Rows become frozen values here, so nothing above sees a row. (This is a repository; it lives in
``services/`` only because the sync's files are confined there for now.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.periods import BillingCycle, Period
from stripemeter.domain.pushes import LogState, Pending
from stripemeter.store import dialect
from stripemeter.store.counters import change_minute, state_from_row
from stripemeter.store.tables import (
    counters,
    customer_mappings,
    price_mappings,
    push_cursors,
    push_log,
    stripe_subscription_items,
)

SCAN_OVERLAP = timedelta(seconds=60)  # re-read counters this far behind the cursor (late commits)
EPOCH_FLOOR = datetime.fromisoformat("1970-01-01T00:00:00+00:00")

MAPPING_FIELDS = (
    "metric",
    "aggregation",
    "driver",
    "stripe_account",
    "meter_event_name",
    "meter_id",
    "price_id",
    "subscription_item_id",
    "currency",
    "active",
    "shadow",
    "shadow_stripe_account",
    "shadow_meter_event_name",
    "shadow_price_id",
    "shadow_subscription_item_id",
)


@dataclass(frozen=True, slots=True)
class PriceMapping:
    """A metric → Stripe target mapping of one tenant."""

    id: str
    tenant_id: str
    metric: str
    aggregation: str
    driver: str
    stripe_account: str
    meter_event_name: str | None
    meter_id: str | None
    price_id: str | None
    subscription_item_id: str | None
    currency: str | None
    active: bool
    shadow: bool
    shadow_stripe_account: str | None
    shadow_meter_event_name: str | None
    shadow_price_id: str | None
    shadow_subscription_item_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> PriceMapping:
        """Build from a ``price_mappings`` row."""
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def targets(self) -> list[str]:
        """The write-log targets this mapping pushes to."""
        return ["live", "shadow"] if self.shadow else ["live"]

    @property
    def aggregation_kind(self) -> Aggregation:
        """The aggregation as the domain enum."""
        return Aggregation(self.aggregation)


@dataclass(frozen=True, slots=True)
class CustomerMapping:
    """customerRef → Stripe customer id (and an optional test-mode id for shadow pushes)."""

    tenant_id: str
    customer_ref: str
    stripe_customer_id: str
    shadow_stripe_customer_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> CustomerMapping:
        """Build from a ``customer_mappings`` row."""
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class LogRow:
    """One write-log row."""

    id: int
    tenant_id: str
    mapping_id: str
    target: str
    customer_ref: str
    period: Period
    pushed_total: Decimal
    pushed_seq: int
    last_stamp: datetime | None
    pending: Pending | None
    status: str
    dirty: bool
    changed_at: datetime | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> LogRow:
        """Build from a ``push_log`` row."""
        pending = None
        if row["pending_to"] is not None:
            pending = Pending(
                row["pending_from"],
                row["pending_to"],
                row["pending_stamp"],
                row["pending_since"],
                row["identifier"],
            )
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            mapping_id=row["mapping_id"],
            target=row["target"],
            customer_ref=row["customer_ref"],
            period=Period(row["period_start"], row["period_end"]),
            pushed_total=row["pushed_total"],
            pushed_seq=row["pushed_seq"],
            last_stamp=row["last_stamp"],
            pending=pending,
            status=row["status"],
            dirty=row["dirty"],
            changed_at=row["changed_at"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            next_attempt_at=row["next_attempt_at"],
            lease_owner=row["lease_owner"],
            lease_expires_at=row["lease_expires_at"],
            updated_at=row["updated_at"],
        )

    @property
    def state(self) -> LogState:
        """The planner's view."""
        return LogState(self.pushed_total, self.pushed_seq, self.last_stamp, self.pending)

    @property
    def identifier_shown(self) -> str | None:
        """The identifier of the push in flight, if any."""
        return self.pending.identifier if self.pending else None


@dataclass(frozen=True, slots=True)
class SubscriptionItem:
    """The cached Stripe subscription item of a (mapping, target, customer), with its cycle."""

    subscription_id: str | None
    item_id: str | None
    cycle: BillingCycle | None
    current_period: Period | None
    fetched_at: datetime


# --- price mappings --------------------------------------------------------------------------


async def insert_mapping(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Store a new mapping."""
    await conn.execute(price_mappings.insert().values(**values))


async def get_mapping(
    conn: AsyncConnection, tenant_id: str, mapping_id: str
) -> PriceMapping | None:
    """One mapping of this tenant."""
    row = (
        (
            await conn.execute(
                select(price_mappings).where(
                    price_mappings.c.tenant_id == tenant_id, price_mappings.c.id == mapping_id
                )
            )
        )
        .mappings()
        .first()
    )
    return PriceMapping.from_row(row) if row else None


async def list_mappings(
    conn: AsyncConnection,
    tenant_id: str | None,
    *,
    active: bool | None = None,
    metric: str | None = None,
) -> list[PriceMapping]:
    """Mappings of a tenant (every tenant when None), oldest first."""
    query = select(price_mappings)
    if tenant_id is not None:
        query = query.where(price_mappings.c.tenant_id == tenant_id)
    if active is not None:
        query = query.where(price_mappings.c.active == active)
    if metric is not None:
        query = query.where(price_mappings.c.metric == metric)
    rows = await conn.execute(query.order_by(price_mappings.c.created_at, price_mappings.c.id))
    return [PriceMapping.from_row(r) for r in rows.mappings()]


async def update_mapping(
    conn: AsyncConnection, tenant_id: str, mapping_id: str, values: dict[str, Any]
) -> None:
    """Change fields of one mapping."""
    await conn.execute(
        update(price_mappings)
        .where(price_mappings.c.tenant_id == tenant_id, price_mappings.c.id == mapping_id)
        .values(**values)
    )


async def delete_mapping(conn: AsyncConnection, tenant_id: str, mapping_id: str) -> bool:
    """Remove a mapping (its write-log rows stay, as history)."""
    result = await conn.execute(
        delete(price_mappings).where(
            price_mappings.c.tenant_id == tenant_id, price_mappings.c.id == mapping_id
        )
    )
    await conn.execute(delete(push_cursors).where(push_cursors.c.mapping_id == mapping_id))
    return bool(result.rowcount)


# --- customer mappings -----------------------------------------------------------------------


async def upsert_customers(
    conn: AsyncConnection,
    tenant_id: str,
    items: Sequence[tuple[str, str, str | None]],
    now: datetime,
) -> None:
    """Create or replace customer mappings ``(customerRef, stripeCustomerId, shadowId)``."""
    if not items:
        return
    stmt = dialect.insert(conn, customer_mappings)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "customer_ref"],
        set_={
            "stripe_customer_id": stmt.excluded.stripe_customer_id,
            "shadow_stripe_customer_id": stmt.excluded.shadow_stripe_customer_id,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    await conn.execute(
        stmt,
        [
            {
                "tenant_id": tenant_id,
                "customer_ref": ref,
                "stripe_customer_id": stripe_id,
                "shadow_stripe_customer_id": shadow_id,
                "created_at": now,
                "updated_at": now,
            }
            for ref, stripe_id, shadow_id in items
        ],
    )


async def get_customer(
    conn: AsyncConnection, tenant_id: str, customer_ref: str
) -> CustomerMapping | None:
    """One customer mapping of this tenant."""
    row = (
        (
            await conn.execute(
                select(customer_mappings).where(
                    customer_mappings.c.tenant_id == tenant_id,
                    customer_mappings.c.customer_ref == customer_ref,
                )
            )
        )
        .mappings()
        .first()
    )
    return CustomerMapping.from_row(row) if row else None


async def list_customers(
    conn: AsyncConnection, tenant_id: str, *, after: str | None, limit: int
) -> list[CustomerMapping]:
    """Customer mappings by customerRef, a page at a time."""
    query = select(customer_mappings).where(customer_mappings.c.tenant_id == tenant_id)
    if after is not None:
        query = query.where(customer_mappings.c.customer_ref > after)
    rows = await conn.execute(query.order_by(customer_mappings.c.customer_ref).limit(limit))
    return [CustomerMapping.from_row(r) for r in rows.mappings()]


async def delete_customer(conn: AsyncConnection, tenant_id: str, customer_ref: str) -> bool:
    """Remove one customer mapping."""
    result = await conn.execute(
        delete(customer_mappings).where(
            customer_mappings.c.tenant_id == tenant_id,
            customer_mappings.c.customer_ref == customer_ref,
        )
    )
    return bool(result.rowcount)


# --- the change scan -------------------------------------------------------------------------


async def cursor_of(conn: AsyncConnection, mapping_id: str) -> datetime:
    """How far the change scan of a mapping has read."""
    value = (
        await conn.execute(
            select(push_cursors.c.seen_until).where(push_cursors.c.mapping_id == mapping_id)
        )
    ).scalar()
    return value if value is not None else EPOCH_FLOOR


async def advance_cursor(conn: AsyncConnection, mapping_id: str, seen_until: datetime) -> None:
    """Record the scan's progress (never moving it back)."""
    stmt = dialect.insert(conn, push_cursors).values(mapping_id=mapping_id, seen_until=seen_until)
    stmt = stmt.on_conflict_do_update(
        index_elements=["mapping_id"],
        set_={"seen_until": func.max(push_cursors.c.seen_until, stmt.excluded.seen_until)}
        if conn.dialect.name == "sqlite"
        else {"seen_until": func.greatest(push_cursors.c.seen_until, stmt.excluded.seen_until)},
    )
    await conn.execute(stmt)


async def changed_counters(
    conn: AsyncConnection, mapping: PriceMapping, since: datetime, customer_ref: str | None
) -> list[RowMapping]:
    """Counters of the mapping's metric updated after ``since`` (minus the overlap)."""
    query = select(
        counters.c.customer_ref,
        counters.c.period_start,
        counters.c.period_end,
        counters.c.updated_at,
    ).where(
        counters.c.tenant_id == mapping.tenant_id,
        counters.c.metric == mapping.metric,
        # The index holds the minute (see store/tables.py); the exact instant filters within it.
        counters.c.updated_minute >= change_minute(since - SCAN_OVERLAP),
        counters.c.updated_at > since - SCAN_OVERLAP,
    )
    if customer_ref is not None:
        query = query.where(counters.c.customer_ref == customer_ref)
    return list((await conn.execute(query)).mappings())


async def mark_dirty(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Create write-log rows, or flag existing ones, for counters that changed.

    A row is flagged once per counter change: ``seen_at`` remembers the change marked last, and
    any other ``updated_at`` flags it again. Not only a newer one: on PostgreSQL an ingest reads
    its clock before it waits for the counter's lock, so a counter's ``updated_at`` can step
    back when two writers of it commit out of clock order, and that later commit must be pushed.
    Rows of one key keep their newest change (an anchored period spans two counters).
    """
    if not rows:
        return
    newest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["mapping_id"], row["target"], row["customer_ref"], row["period_start"])
        if key not in newest or newest[key]["seen_at"] < row["seen_at"]:
            newest[key] = row
    rows = list(newest.values())
    stmt = dialect.insert(conn, push_log)
    stmt = stmt.on_conflict_do_update(
        index_elements=["mapping_id", "target", "customer_ref", "period_start"],
        set_={
            "dirty": True,
            "seen_at": stmt.excluded.seen_at,
            "changed_at": func.coalesce(push_log.c.changed_at, stmt.excluded.changed_at),
            "next_attempt_at": func.min(push_log.c.next_attempt_at, stmt.excluded.next_attempt_at)
            if conn.dialect.name == "sqlite"
            else func.least(push_log.c.next_attempt_at, stmt.excluded.next_attempt_at),
        },
        where=or_(push_log.c.seen_at.is_(None), push_log.c.seen_at != stmt.excluded.seen_at),
    )
    await conn.execute(stmt, list(rows))


def new_log_row(
    tenant_id: str,
    mapping_id: str,
    target: str,
    customer_ref: str,
    period: Period,
    changed: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Column values of a fresh write-log row."""
    return {
        "tenant_id": tenant_id,
        "mapping_id": mapping_id,
        "target": target,
        "customer_ref": customer_ref,
        "period_start": period.start,
        "period_end": period.end,
        "pushed_total": Decimal(0),
        "pushed_seq": 0,
        "status": "ok",
        "dirty": True,
        "changed_at": changed,
        "seen_at": changed,
        "attempts": 0,
        "next_attempt_at": now,
        "updated_at": now,
    }


# --- leases ----------------------------------------------------------------------------------


async def lease(
    conn: AsyncConnection,
    owner: str,
    now: datetime,
    lease_for: timedelta,
    limit: int,
    *,
    tenant_id: str | None = None,
    customer_ref: str | None = None,
    ignore_backoff: bool = False,
    exclude: Sequence[int] = (),
) -> list[LogRow]:
    """Claim up to ``limit`` rows with work (changed or pending), skipping rows others hold.

    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL lets workers claim disjoint rows without waiting;
    SQLite's single writer serialises this transaction anyway. Claiming clears ``dirty``: a change
    that lands while the row is being pushed flags it again.
    """
    query = select(push_log.c.id).where(
        push_log.c.status != "parked",
        or_(push_log.c.dirty.is_(True), push_log.c.status == "pending"),
        or_(push_log.c.lease_expires_at.is_(None), push_log.c.lease_expires_at < now),
    )
    if not ignore_backoff:
        query = query.where(push_log.c.next_attempt_at <= now)
    if tenant_id is not None:
        query = query.where(push_log.c.tenant_id == tenant_id)
    if customer_ref is not None:
        query = query.where(push_log.c.customer_ref == customer_ref)
    if exclude:
        query = query.where(push_log.c.id.not_in(list(exclude)))
    query = query.order_by(push_log.c.next_attempt_at, push_log.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = [r for (r,) in await conn.execute(query)]
    if not ids:
        return []
    await conn.execute(
        update(push_log)
        .where(push_log.c.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + lease_for, dirty=False)
    )
    rows = await conn.execute(select(push_log).where(push_log.c.id.in_(ids)))
    return sorted((LogRow.from_row(r) for r in rows.mappings()), key=lambda r: r.id)


async def renew_lease(conn: AsyncConnection, row_id: int, owner: str, until: datetime) -> bool:
    """Extend our lease; False when the row is no longer ours."""
    result = await conn.execute(
        update(push_log)
        .where(push_log.c.id == row_id, push_log.c.lease_owner == owner)
        .values(lease_expires_at=until)
    )
    return bool(result.rowcount)


async def release(
    conn: AsyncConnection, row_id: int, owner: str, now: datetime, **values: Any
) -> None:
    """Give the row back, with whatever changed."""
    await conn.execute(
        update(push_log)
        .where(push_log.c.id == row_id, push_log.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, updated_at=now, **values)
    )


async def write_intent(
    conn: AsyncConnection,
    row: LogRow,
    owner: str,
    *,
    from_total: Decimal,
    to_total: Decimal,
    stamp: datetime,
    identifier: str,
    now: datetime,
) -> bool:
    """Phase one: record the push about to be sent. False if the row moved under us."""
    result = await conn.execute(
        update(push_log)
        .where(
            push_log.c.id == row.id,
            push_log.c.lease_owner == owner,
            push_log.c.pending_to.is_(None),
            push_log.c.pushed_seq == row.pushed_seq,
        )
        .values(
            pending_from=from_total,
            pending_to=to_total,
            pending_stamp=stamp,
            pending_since=now,
            identifier=identifier,
            status="pending",
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def confirm(
    conn: AsyncConnection, row_id: int, identifier: str, now: datetime, *, recheck: bool = False
) -> bool:
    """Phase two: Stripe has the push; make its ``to`` the confirmed total (once).

    ``recheck`` flags the row: the push was planned before its claim (a re-sent or verified
    intent), so the local total has not been compared with the new confirmed total yet.
    """
    extra: dict[str, Any] = {"dirty": True} if recheck else {}
    result = await conn.execute(
        update(push_log)
        .where(
            push_log.c.id == row_id,
            push_log.c.identifier == identifier,
            push_log.c.pending_to.is_not(None),
        )
        .values(
            pushed_total=push_log.c.pending_to,
            pushed_seq=push_log.c.pushed_seq + 1,
            last_stamp=push_log.c.pending_stamp,
            pending_from=None,
            pending_to=None,
            pending_stamp=None,
            pending_since=None,
            status="ok",
            attempts=0,
            last_error=None,
            updated_at=now,
            **extra,
        )
    )
    return bool(result.rowcount)


async def reclaim(conn: AsyncConnection, row_ids: Sequence[int], owner: str) -> list[LogRow]:
    """Claim again rows we still lease (clearing ``dirty`` as a claim does); others are gone."""
    if not row_ids:
        return []
    ours = and_(push_log.c.id.in_(list(row_ids)), push_log.c.lease_owner == owner)
    await conn.execute(update(push_log).where(ours).values(dirty=False))
    rows = await conn.execute(select(push_log).where(ours))
    return sorted((LogRow.from_row(r) for r in rows.mappings()), key=lambda r: r.id)


async def abandon_intent(
    conn: AsyncConnection, row_id: int, identifier: str, now: datetime
) -> None:
    """Drop a pending push Stripe never applied (refused, or verified absent)."""
    await conn.execute(
        update(push_log)
        .where(push_log.c.id == row_id, push_log.c.identifier == identifier)
        .values(
            pending_from=None,
            pending_to=None,
            pending_stamp=None,
            pending_since=None,
            status="ok",
            dirty=True,
            updated_at=now,
        )
    )


async def unpark(
    conn: AsyncConnection,
    tenant_id: str,
    now: datetime,
    *,
    mapping_id: str | None = None,
    customer_ref: str | None = None,
) -> int:
    """Give parked rows another go (after their mapping or customer changed)."""
    query = update(push_log).where(push_log.c.tenant_id == tenant_id, push_log.c.status == "parked")
    if mapping_id is not None:
        query = query.where(push_log.c.mapping_id == mapping_id)
    if customer_ref is not None:
        query = query.where(push_log.c.customer_ref == customer_ref)
    result = await conn.execute(
        query.values(
            status=text("CASE WHEN pending_to IS NULL THEN 'ok' ELSE 'pending' END"),
            dirty=True,
            attempts=0,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    return int(result.rowcount)


async def get_log_row(conn: AsyncConnection, row_id: int) -> LogRow | None:
    """One write-log row by id."""
    row = (await conn.execute(select(push_log).where(push_log.c.id == row_id))).mappings().first()
    return LogRow.from_row(row) if row else None


async def list_log(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    status: str | None,
    customer_ref: str | None,
    mapping_id: str | None,
    after_id: int | None,
    limit: int,
) -> list[LogRow]:
    """A tenant's write log, newest rows first."""
    query = select(push_log).where(push_log.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(push_log.c.status == status)
    if customer_ref is not None:
        query = query.where(push_log.c.customer_ref == customer_ref)
    if mapping_id is not None:
        query = query.where(push_log.c.mapping_id == mapping_id)
    if after_id is not None:
        query = query.where(push_log.c.id < after_id)
    rows = await conn.execute(query.order_by(push_log.c.id.desc()).limit(limit))
    return [LogRow.from_row(r) for r in rows.mappings()]


async def oldest_unpushed_change(conn: AsyncConnection) -> datetime | None:
    """The oldest counter change still waiting for Stripe (any tenant)."""
    value = (
        await conn.execute(
            select(func.min(push_log.c.changed_at)).where(
                push_log.c.changed_at.is_not(None),
                or_(push_log.c.dirty.is_(True), push_log.c.status != "ok"),
            )
        )
    ).scalar()
    return value if isinstance(value, datetime) else None


# --- local totals ----------------------------------------------------------------------------


async def counter_total(
    conn: AsyncConnection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    period_start: datetime,
    aggregation: Aggregation,
) -> Decimal:
    """The billing value of one counter (zero when there is none)."""
    row = (
        (
            await conn.execute(
                select(counters).where(
                    counters.c.tenant_id == tenant_id,
                    counters.c.metric == metric,
                    counters.c.customer_ref == customer_ref,
                    counters.c.period_start == period_start,
                )
            )
        )
        .mappings()
        .first()
    )
    return state_from_row(row).value(aggregation) if row else Decimal(0)


# --- subscription cache ----------------------------------------------------------------------


async def get_subscription_item(
    conn: AsyncConnection, mapping_id: str, target: str, customer_ref: str
) -> SubscriptionItem | None:
    """The cached subscription item, if looked up before."""
    row = (
        (
            await conn.execute(
                select(stripe_subscription_items).where(
                    stripe_subscription_items.c.mapping_id == mapping_id,
                    stripe_subscription_items.c.target == target,
                    stripe_subscription_items.c.customer_ref == customer_ref,
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    cycle = None
    if row["anchor"] is not None and row["interval"]:
        cycle = BillingCycle(row["anchor"], row["interval"], row["interval_count"] or 1)
    current = None
    if row["current_period_start"] is not None and row["current_period_end"] is not None:
        current = Period(row["current_period_start"], row["current_period_end"])
    return SubscriptionItem(
        row["subscription_id"], row["item_id"], cycle, current, row["fetched_at"]
    )


async def put_subscription_item(
    conn: AsyncConnection,
    tenant_id: str,
    mapping_id: str,
    target: str,
    customer_ref: str,
    item: SubscriptionItem,
) -> None:
    """Cache what Stripe said about a customer's subscription item."""
    values = {
        "tenant_id": tenant_id,
        "subscription_id": item.subscription_id,
        "item_id": item.item_id,
        "anchor": item.cycle.anchor if item.cycle else None,
        "interval": item.cycle.interval if item.cycle else None,
        "interval_count": item.cycle.count if item.cycle else None,
        "current_period_start": item.current_period.start if item.current_period else None,
        "current_period_end": item.current_period.end if item.current_period else None,
        "fetched_at": item.fetched_at,
    }
    stmt = dialect.insert(conn, stripe_subscription_items).values(
        mapping_id=mapping_id, target=target, customer_ref=customer_ref, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["mapping_id", "target", "customer_ref"], set_=values
    )
    await conn.execute(stmt)
