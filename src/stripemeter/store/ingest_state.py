"""The ingest transaction's reads and writes, in as few statements as the database allows.

An ingest group locks its customers and counter series, reads what its decisions need (billing
cycles, counters, closed periods and, when asked, the idempotency keys already stored), then writes
the new events and the changed counters. On PostgreSQL each of those three steps is one constant
statement (prepared once per connection), whatever the group's size: a group of single-event
requests is then five round trips with BEGIN and COMMIT, where a statement per table made it
ten. A large group writes in three (ids, COPY of the events, counters): COPY halves PostgreSQL's
cost per event. Reads come back as one JSON document, decoded by msgspec. SQLite runs
in-process, so there the same steps are the tables' own statements.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeAlias, TypeGuard, cast

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import CounterState
from stripemeter.domain.periods import BillingCycle, Period
from stripemeter.domain.quantities import normalize
from stripemeter.store import billing, counters, cycles, dialect, ledger
from stripemeter.store.counters import CounterKey, series_lock_name
from stripemeter.store.cycles import Customer
from stripemeter.store.ledger import StoredKey

Series = tuple[str, str, str]  # (tenant, metric, customerRef): what a counter lock covers
# The ingest transaction's connection: SQLAlchemy's (SQLite; PostgreSQL requests with an
# Idempotency-Key, whose claim is a SQLAlchemy statement), or a bare asyncpg one
# (``Database.driver_write``, every other PostgreSQL group).
Connection: TypeAlias = AsyncConnection | asyncpg.Connection


@dataclass(slots=True)
class IngestState:
    """What an ingest group's decisions read, for its customers and series."""

    cycles: dict[Customer, BillingCycle] = field(default_factory=dict)
    # Every stored counter of the group's series whose period overlaps the group's time span.
    counters: dict[CounterKey, CounterState] = field(default_factory=dict)
    closed: dict[Customer, list[Period]] = field(default_factory=dict)
    stored: dict[tuple[str, str], StoredKey] = field(default_factory=dict)  # (tenant, key)


_PG_LOCK = (
    # Shared cycle locks first, then exclusive series locks, each in sorted order (the order every
    # writer uses): unnest yields the rows, and the aggregate takes the locks, in array order.
    "SELECT count(CASE WHEN s THEN pg_advisory_xact_lock_shared(x) ELSE pg_advisory_xact_lock(x)"
    " END) FROM unnest($1::bigint[], $2::boolean[]) AS l(x, s)"
)


async def lock(
    conn: Connection, customers: Collection[Customer], series: Collection[Series]
) -> None:
    """Hold the customers' cycle locks (shared) and the series' counter locks until commit."""
    if _sqlite(conn):
        return  # SQLite has one writer at a time
    shared = sorted({dialect.lock_id(cycles.lock_name(t, c)) for t, c in customers})
    exclusive = sorted({dialect.lock_id(series_lock_name(*s)) for s in series})
    if not (shared or exclusive):
        return
    params = (shared + exclusive, [True] * len(shared) + [False] * len(exclusive))
    if isinstance(conn, AsyncConnection):
        # Through SQLAlchemy, which opens its transaction here: ``read`` and ``write`` then run
        # their statements on the asyncpg connection underneath, inside it.
        await conn.exec_driver_sql(_PG_LOCK, params)
    else:
        await conn.fetchval(_PG_LOCK, *params)


# One statement for every read of a tenant's part of a group. $1 tenant, $2 customers (JSON array),
# $3 series ([[metric, customer], ...]), $4/$5 the group's earliest/latest event time, $6 keys to
# probe (JSON array) or NULL. Counters are found by primary-key prefix and period range, so the
# caller needs no cycle to name them. Every lookup is a LATERAL subquery per customer, series or
# key, fenced (LIMIT / OFFSET 0) so the planner cannot flatten it into a join that scans all of
# the tenant's rows: a generic plan did exactly that, hashing every counter of the tenant per group.
_PG_READ = """
SELECT json_build_object(
  'cycles', (SELECT json_agg(json_build_array(r.ref, b.anchor, b.interval, b.interval_count))
             FROM jsonb_array_elements_text($2::jsonb) AS r(ref)
             CROSS JOIN LATERAL (SELECT anchor, interval, interval_count FROM billing_cycles
               WHERE tenant_id = $1 AND customer_ref = r.ref AND anchor IS NOT NULL
               LIMIT 1) AS b),
  'counters', (SELECT json_agg(json_build_array(c.metric, c.customer_ref, c.period_start,
                 c."sum", c."max", c."last", c.last_ts, c.last_key, c."count", c.watermark))
               FROM jsonb_array_elements($3::jsonb) AS v
               CROSS JOIN LATERAL (SELECT * FROM counters WHERE tenant_id = $1
                 AND metric = v->>0 AND customer_ref = v->>1
                 AND period_start <= $5 AND period_end > $4 OFFSET 0) AS c),
  'closed', (SELECT json_agg(json_build_array(r.ref, p.period_start, p.period_end))
             FROM jsonb_array_elements_text($2::jsonb) AS r(ref)
             CROSS JOIN LATERAL (SELECT period_start, period_end FROM closed_periods
               WHERE tenant_id = $1 AND customer_ref = r.ref AND period_end > $4
               OFFSET 0) AS p),
  'keys', (SELECT json_agg(json_build_array(k.key, e.id, e.payload_hash))
           FROM jsonb_array_elements_text($6::jsonb) AS k(key)
           CROSS JOIN LATERAL (SELECT id, payload_hash FROM events
             WHERE tenant_id = $1 AND idempotency_key = k.key LIMIT 1) AS e)
)::text
"""


class _Read(msgspec.Struct):
    cycles: list[tuple[str, str, str | None, int | None]] | None
    counters: (
        list[tuple[str, str, str, Any, Any, Any, str | None, str | None, int, str | None]] | None
    )
    closed: list[tuple[str, str, str]] | None
    keys: list[tuple[str, int, str]] | None


_read_json = msgspec.json.Decoder(_Read, float_hook=Decimal)
_to_json = msgspec.json.Encoder(decimal_format="number")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def read(
    conn: Connection,
    customers: Collection[Customer],
    series: Collection[Series],
    span: tuple[datetime, datetime],
    probe: Iterable[tuple[str, str]] | None,
) -> IngestState:
    """Cycles, counters overlapping ``span``, closed periods and (when ``probe``) stored keys."""
    state = IngestState()
    tenants = {t for t, _ in customers}
    probed: dict[str, list[str]] = {}
    for tenant_id, key in probe or ():
        probed.setdefault(tenant_id, []).append(key)
    since, until = span
    if _sqlite(conn):
        await _read_sqlite(conn, state, customers, series, span, probed)
        return state
    driver = await _driver(conn)
    for tenant_id in sorted(tenants):
        refs = sorted({c for t, c in customers if t == tenant_id})
        pairs = sorted({(m, c) for t, m, c in series if t == tenant_id})
        keys = probed.get(tenant_id)
        document = await driver.fetchval(
            _PG_READ,
            tenant_id,
            _to_json.encode(refs).decode(),
            _to_json.encode(pairs).decode(),
            since,
            until,
            _to_json.encode(list(dict.fromkeys(keys))).decode() if keys else None,
        )
        found = _read_json.decode(cast("str", document))
        for ref, anchor, interval, count in found.cycles or ():
            if anchor is not None and interval:
                state.cycles[(tenant_id, ref)] = BillingCycle(
                    _instant(anchor), interval, int(count or 1)
                )
        for metric, ref, start, *values in found.counters or ():
            total, high, last, last_at, last_key, count, watermark = values
            state.counters[CounterKey(tenant_id, metric, ref, _instant(start))] = CounterState(
                sum=normalize(Decimal(total)),
                max=counters.exact(high),
                last=counters.exact(last),
                last_at=_instant(last_at) if last_at else None,
                last_key=last_key,
                count=count,
                watermark=_instant(watermark) if watermark else None,
            )
        for ref, start, end in found.closed or ():
            state.closed.setdefault((tenant_id, ref), []).append(
                Period(_instant(start), _instant(end))
            )
        for key, event_id, payload_hash in found.keys or ():
            state.stored[(tenant_id, key)] = StoredKey(event_id, payload_hash)
    return state


async def _read_sqlite(
    conn: AsyncConnection,
    state: IngestState,
    customers: Collection[Customer],
    series: Collection[Series],
    span: tuple[datetime, datetime],
    probed: dict[str, list[str]],
) -> None:
    state.cycles.update(await cycles.load(conn, customers))
    state.counters.update(await counters.load_series(conn, series, span))
    state.closed.update(
        await billing.closed_periods_since(conn, {t for t, _ in customers}, span[0])
    )
    for tenant_id, keys in probed.items():
        for key, found in (await ledger.find_keys(conn, tenant_id, keys)).items():
            state.stored[(tenant_id, key)] = found


# Both upserts as one statement: data-modifying CTEs always run to completion.
# Constant statements joined; every value is a parameter.
_PG_WRITE = (
    "WITH saved AS ("  # noqa: S608
    + counters.PG_SAVE
    + "), inserted AS ("
    + ledger.PG_INSERT_EVENTS.replace("$1", "$3")
    + ") SELECT id, tenant_id, idempotency_key FROM inserted"
)
# From this many candidates the events travel by COPY: PostgreSQL spends about half the CPU per
# row of an INSERT … SELECT (docs/decisions.md, Group commit), but COPY costs two more round trips,
# which a small group (single-event requests) feels more than it saves.
COPY_FROM = 256
_PG_NUMBERS = "SELECT array(SELECT nextval('events_id_seq') FROM generate_series(1, $1))"
_COPY_COLUMNS = ("id", *ledger.EVENT_COLUMNS)
Changed = Sequence[tuple[CounterKey, Period, CounterState]]


async def write(
    conn: Connection,
    rows: Iterator[ledger.EventRow],
    most: int,
    changed: Callable[[], Changed],
    now: datetime,
) -> dict[tuple[str, str], int]:
    """Insert the events (at most ``most``), then upsert the counters ``changed()`` returns once
    every row was taken; the new ids by (tenant, key).

    A key another transaction stored first raises ``ConcurrentInsert``: the whole transaction
    must be rolled back and run again, counters included.
    """
    if most >= COPY_FROM and not _sqlite(conn):
        return await _copy(await _driver(conn), rows, most, changed, now)
    events = list(rows)
    if _sqlite(conn):
        ids = await ledger.insert_events(conn, events)
        await counters.save(conn, {k: (p, s) for k, p, s in changed()}, now)
    else:
        inserted = await (await _driver(conn)).fetch(
            _PG_WRITE, counters.pg_rows(changed()), now, _to_json.encode(events).decode()
        )
        ids = {(row[1], row[2]): row[0] for row in inserted}
    if len(ids) != len(events):
        raise ledger.ConcurrentInsert
    return ids


async def _copy(
    driver: asyncpg.Connection,
    rows: Iterator[ledger.EventRow],
    most: int,
    changed: Callable[[], Changed],
    now: datetime,
) -> dict[tuple[str, str], int]:
    # COPY returns no ids: draw them first, in input order (unused ones are gaps, as an insert
    # that skips a key leaves). Rows are produced while asyncpg sends them, every 512 KiB, so
    # PostgreSQL writes the first while the caller judges the rest.
    numbers: list[int] = await driver.fetchval(_PG_NUMBERS, most)
    ids: dict[tuple[str, str], int] = {}

    def numbered() -> Iterator[tuple[Any, ...]]:
        for number, row in zip(numbers, rows, strict=False):
            ids[(row[0], row[1])] = number
            yield (number, *row)

    try:
        await driver.copy_records_to_table("events", records=numbered(), columns=_COPY_COLUMNS)
    except asyncpg.UniqueViolationError:
        raise ledger.ConcurrentInsert from None
    await driver.execute(counters.PG_SAVE, counters.pg_rows(changed()), now)
    return ids


def _sqlite(conn: Connection) -> TypeGuard[AsyncConnection]:
    return isinstance(conn, AsyncConnection) and conn.dialect.name != "postgresql"


async def _driver(conn: Connection) -> asyncpg.Connection:
    """The asyncpg connection the statements run on: SQLAlchemy's per-statement work (greenlet
    switch, cursor adaptation, result wrapping) cost ~150 us of CPU per statement here."""
    if not isinstance(conn, AsyncConnection):
        return conn
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # a live connection, inside a transaction
    return cast("asyncpg.Connection", driver)
