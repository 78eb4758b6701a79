"""Counter rows: loading them as ``CounterState`` and writing them back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

import msgspec
from sqlalchemy import and_, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import CounterState
from stripemeter.domain.periods import Period
from stripemeter.domain.quantities import normalize
from stripemeter.store import dialect
from stripemeter.store.tables import counters

KEY_CHUNK = 300


class CounterKey(NamedTuple):
    """Identifies one counter: (tenant, metric, customer, period start).

    A named tuple, not a dataclass: ingest hashes one per event, and a tuple hashes in C.
    """

    tenant_id: str
    metric: str
    customer_ref: str
    period_start: datetime

    @property
    def lock_name(self) -> str:
        """The advisory-lock name that serialises writers of this counter (and of its series)."""
        return series_lock_name(self.tenant_id, self.metric, self.customer_ref)


def series_lock_name(tenant_id: str, metric: str, customer_ref: str) -> str:
    """The lock of every period of one (tenant, metric, customer): ingest takes it before it knows
    which periods its events fall in, so every other writer of a counter takes the same one."""
    return f"counter|{tenant_id}|{metric}|{customer_ref}"


def change_minute(at: datetime) -> datetime:
    """The minute a change at ``at`` is indexed under (``updated_minute``, the pusher's feed)."""
    return at.replace(second=0, microsecond=0)


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


# PostgreSQL hot path: one constant statement per call whatever the number of keys, so asyncpg
# prepares it once per connection and nothing is re-planned per batch size. Keys and rows travel as
# one JSON document of arrays (encoded by msgspec; far cheaper for the client than asyncpg's
# per-element array encoding); decimals as exact JSON numbers, instants as RFC 3339 UTC.
_to_json = msgspec.json.Encoder(decimal_format="number")
_PG_LOAD = (
    # LATERAL … LIMIT 1: one primary-key probe per key, never a scan of the tenant's counters
    # (which the planner picks with stale statistics).
    'SELECT k.metric, k.customer_ref, k.period_start, c."sum", c."max", c."last", c.last_ts,'
    ' c.last_key, c."count", c.watermark'
    " FROM (SELECT v->>0 AS metric, v->>1 AS customer_ref, (v->>2)::timestamptz AS period_start"
    " FROM jsonb_array_elements($2::jsonb) AS v) AS k"
    ' CROSS JOIN LATERAL (SELECT "sum", "max", "last", last_ts, last_key, "count", watermark'
    " FROM counters WHERE tenant_id = $1 AND metric = k.metric AND customer_ref = k.customer_ref"
    " AND period_start = k.period_start LIMIT 1) AS c"
)
PG_SAVE = (
    "INSERT INTO counters (tenant_id, metric, customer_ref, period_start, period_end,"
    ' "sum", "max", "last", last_ts, last_key, "count", watermark, updated_at, updated_minute)'
    " SELECT v->>0, v->>1, v->>2, (v->>3)::timestamptz, (v->>4)::timestamptz, (v->>5)::numeric,"
    " (v->>6)::numeric, (v->>7)::numeric, (v->>8)::timestamptz, v->>9, (v->>10)::bigint,"
    " (v->>11)::timestamptz, $2::timestamptz, date_trunc('minute', $2::timestamptz)"
    " FROM jsonb_array_elements($1::jsonb) AS v"
    " ON CONFLICT (tenant_id, metric, customer_ref, period_start) DO UPDATE SET"
    ' period_end = excluded.period_end, "sum" = excluded."sum", "max" = excluded."max",'
    ' "last" = excluded."last", last_ts = excluded.last_ts, last_key = excluded.last_key,'
    ' "count" = excluded."count", watermark = excluded.watermark, updated_at = excluded.updated_at,'
    " updated_minute = excluded.updated_minute"
)


def exact(value: Any) -> Decimal | None:
    """A NUMERIC (or its JSON text) as the domain keeps it: NUMERIC keeps the scale it was given
    (3.50), the domain wants the fewest digits (3.5), as the Quantity column type gives on the
    SQLAlchemy path."""
    return None if value is None else normalize(Decimal(value))


async def load(conn: AsyncConnection, keys: Iterable[CounterKey]) -> dict[CounterKey, CounterState]:
    """The stored state of each existing counter among ``keys``."""
    by_tenant: dict[str, list[CounterKey]] = {}
    for key in keys:
        by_tenant.setdefault(key.tenant_id, []).append(key)
    found: dict[CounterKey, CounterState] = {}
    postgres = conn.dialect.name == "postgresql"
    for tenant_id, tenant_keys in by_tenant.items():
        if postgres:
            wanted = [(k.metric, k.customer_ref, k.period_start) for k in tenant_keys]
            result = await conn.exec_driver_sql(
                _PG_LOAD, (tenant_id, _to_json.encode(wanted).decode())
            )
            for row in cast("list[Any]", result.all()):
                found[CounterKey(tenant_id, row[0], row[1], row[2])] = CounterState(
                    sum=normalize(row[3]),
                    max=exact(row[4]),
                    last=exact(row[5]),
                    last_at=row[6],
                    last_key=row[7],
                    count=row[8],
                    watermark=row[9],
                )
            continue
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
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(
            PG_SAVE, (pg_rows((k, p, st) for k, (p, st) in states.items()), now)
        )
        return
    ordered = sorted(states.items(), key=_by_key)
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
            "updated_minute": change_minute(now),
        }
        for key, (period, state) in ordered
    ]
    stmt = dialect.insert(conn, counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "metric", "customer_ref", "period_start"],
        set_={
            name: stmt.excluded[name]
            for name in (
                "period_end",
                "sum",
                "max",
                "last",
                "last_ts",
                "last_key",
                "count",
                "watermark",
                "updated_at",
                "updated_minute",
            )
        },
    )
    await conn.execute(stmt, rows)


def pg_rows(changed: Iterable[tuple[CounterKey, Period, CounterState]]) -> str:
    """``PG_SAVE``'s rows document, in key order (json_array_elements keeps document order)."""
    return _to_json.encode(
        [
            (
                k.tenant_id,
                k.metric,
                k.customer_ref,
                k.period_start,
                p.end,
                s.sum,
                s.max,
                s.last,
                s.last_at,
                s.last_key,
                s.count,
                s.watermark,
            )
            for k, p, s in sorted(changed, key=_by_key)
        ]
    ).decode()


def _by_key(item: tuple[Any, ...]) -> CounterKey:
    # Writers touch counters in key order, so concurrent ones never wait on each other in a cycle.
    key: CounterKey = item[0]
    return key


async def load_series(
    conn: AsyncConnection,
    series: Iterable[tuple[str, str, str]],
    span: tuple[datetime, datetime],
) -> dict[CounterKey, CounterState]:
    """The stored counters of these (tenant, metric, customer) series overlapping ``span``."""
    found: dict[CounterKey, CounterState] = {}
    since, until = span
    wanted = sorted(set(series))
    for start in range(0, len(wanted), KEY_CHUNK):
        chunk = wanted[start : start + KEY_CHUNK]
        rows = await conn.execute(
            select(counters).where(
                tuple_(counters.c.tenant_id, counters.c.metric, counters.c.customer_ref).in_(chunk),
                counters.c.period_start <= until,
                counters.c.period_end > since,
            )
        )
        for row in rows.mappings():
            key = CounterKey(
                row["tenant_id"], row["metric"], row["customer_ref"], row["period_start"]
            )
            found[key] = state_from_row(row)
    return found


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
    *,
    starting_in: Period | None = None,
    containing: datetime | None = None,
    after_customer: str | None,
    limit: int,
) -> list[RowMapping]:
    """Counters of customers after ``after_customer`` (ordered by customer), each customer's own
    period: the ones starting in ``starting_in``, else the ones containing ``containing``."""
    if starting_in is not None:
        which = and_(
            counters.c.period_start >= starting_in.start, counters.c.period_start < starting_in.end
        )
    else:
        assert containing is not None
        which = and_(counters.c.period_start <= containing, counters.c.period_end > containing)
    query = select(counters).where(counters.c.tenant_id == tenant_id, which)
    if after_customer is not None:
        query = query.where(counters.c.customer_ref > after_customer)
    # Fetch whole customers: a limit on customers, not rows, is applied by the caller.
    customers = (
        select(counters.c.customer_ref)
        .where(counters.c.tenant_id == tenant_id, which)
        .distinct()
        .order_by(counters.c.customer_ref)
        .limit(limit)
    )
    if after_customer is not None:
        customers = customers.where(counters.c.customer_ref > after_customer)
    query = query.where(counters.c.customer_ref.in_(customers.scalar_subquery()))
    rows = await conn.execute(
        query.order_by(counters.c.customer_ref, counters.c.metric, counters.c.period_start)
    )
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
