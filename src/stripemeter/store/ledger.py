"""The append-only event ledger: inserting new events and finding ones already stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import event_reviews, events

KEY_CHUNK = 500  # keys per IN list: well inside both databases' parameter limits


class ConcurrentInsert(Exception):  # control flow, not an error users see
    """Another transaction stored one of our keys between our read and our insert; run again."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the ledger already holds under an idempotency key."""

    event_id: int
    payload_hash: str


# A new event as the ingest writes it: values in this column order.
EVENT_COLUMNS = (
    "tenant_id",
    "idempotency_key",
    "payload_hash",
    "metric",
    "customer_ref",
    "resource_id",
    "quantity",
    "ts",
    "ts_text",
    "period_start",
    "status",
    "held_reason",
    "source",
    "meta",
    "received_at",
    "request_id",
)
EventRow = tuple[Any, ...]
_CASTS = {
    "quantity": "numeric",
    "ts": "timestamptz",
    "period_start": "timestamptz",
    "received_at": "timestamptz",
}

# The PostgreSQL ingest's insert (``store/ingest_state.py`` runs it inside its write statement): rows
# travel as one JSON document of arrays (encoded by msgspec), far cheaper for the client than
# asyncpg's per-element array encoding. jsonb parses the document once; positional ``->>`` is then
# cheap (json_to_recordset cost a third more per row here). Decimals are exact JSON numbers read
# into NUMERIC; instants are RFC 3339 UTC.
PG_INSERT_EVENTS = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT "  # noqa: S608 (constant text)
    + ", ".join(
        f"(v->>{i})::{_CASTS[name]}" if name in _CASTS else f"v->>{i}"
        for i, name in enumerate(EVENT_COLUMNS)
    )
    + " FROM jsonb_array_elements($1::jsonb) AS v"
    " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
    " RETURNING id, tenant_id, idempotency_key"
)


async def find_keys(
    conn: AsyncConnection, tenant_id: str, keys: Sequence[str]
) -> dict[str, StoredKey]:
    """The stored events among ``keys`` for one tenant (PostgreSQL's ingest reads them in its
    own read statement, ``store/ingest_state.py``)."""
    found: dict[str, StoredKey] = {}
    unique = list(dict.fromkeys(keys))
    if not unique:
        return found
    for start in range(0, len(unique), KEY_CHUNK):
        chunk = unique[start : start + KEY_CHUNK]
        rows = await conn.execute(
            select(events.c.idempotency_key, events.c.id, events.c.payload_hash).where(
                events.c.tenant_id == tenant_id, events.c.idempotency_key.in_(chunk)
            )
        )
        for key, event_id, payload_hash in rows:
            found[key] = StoredKey(event_id, payload_hash)
    return found


async def insert_events(conn: AsyncConnection, rows: list[EventRow]) -> dict[tuple[str, str], int]:
    """Insert rows, skipping keys that exist; returns the new ids by (tenant, key).

    PostgreSQL's ingest inserts with ``PG_INSERT_EVENTS`` inside its write statement instead.
    """
    if not rows:
        return {}
    stmt = (
        dialect.insert(conn, events)
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(events.c.id, events.c.tenant_id, events.c.idempotency_key)
    )
    result = await conn.execute(stmt, [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows])
    return {(tenant, key): event_id for event_id, tenant, key in result}


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events of a tenant to list."""

    metric: str | None = None
    customer_ref: str | None = None
    status: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(tenant_id: str, spec: EventFilter) -> Select[Any]:
    query = (
        select(
            events,
            event_reviews.c.decision,
            event_reviews.c.actor.label("review_actor"),
            event_reviews.c.decided_at,
        )
        .select_from(events.outerjoin(event_reviews, event_reviews.c.event_id == events.c.id))
        .where(events.c.tenant_id == tenant_id)
    )
    if spec.metric is not None:
        query = query.where(events.c.metric == spec.metric)
    if spec.customer_ref is not None:
        query = query.where(events.c.customer_ref == spec.customer_ref)
    if spec.source is not None:
        query = query.where(events.c.source == spec.source)
    if spec.since is not None:
        query = query.where(events.c.ts >= spec.since)
    if spec.until is not None:
        query = query.where(events.c.ts < spec.until)
    if spec.status == "held":  # awaiting review
        query = query.where(events.c.status == "held", event_reviews.c.event_id.is_(None))
    elif spec.status in ("approved", "dismissed"):
        query = query.where(events.c.status == "held", event_reviews.c.decision == spec.status)
    elif spec.status is not None:
        query = query.where(events.c.status == spec.status)
    return query


async def list_events(
    conn: AsyncConnection, tenant_id: str, spec: EventFilter, *, before_id: int | None, limit: int
) -> list[RowMapping]:
    """A page of events, newest first, strictly older than ``before_id``."""
    query = _filtered(tenant_id, spec).order_by(events.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(events.c.id < before_id)
    return list((await conn.execute(query)).mappings())


async def stream_events(
    conn: AsyncConnection, tenant_id: str, spec: EventFilter, *, chunk: int = 1000
) -> Any:
    """Every matching event, newest first, fetched in chunks (for exports)."""
    before: int | None = None
    while True:
        page = await list_events(conn, tenant_id, spec, before_id=before, limit=chunk)
        for row in page:
            yield row
        if len(page) < chunk:
            return
        before = page[-1]["id"]


async def get_event(conn: AsyncConnection, tenant_id: str, event_id: int) -> RowMapping | None:
    """One event of this tenant by id."""
    query = _filtered(tenant_id, EventFilter()).where(events.c.id == event_id)
    row: RowMapping | None = (await conn.execute(query)).mappings().first()
    return row


async def count_pending_held(conn: AsyncConnection, tenant_id: str | None = None) -> int:
    """Held events nobody has reviewed yet (for a tenant, or all)."""
    query = (
        select(func.count())
        .select_from(events.outerjoin(event_reviews, event_reviews.c.event_id == events.c.id))
        .where(events.c.status == "held", event_reviews.c.event_id.is_(None))
    )
    if tenant_id is not None:
        query = query.where(events.c.tenant_id == tenant_id)
    return int((await conn.execute(query)).scalar_one())
