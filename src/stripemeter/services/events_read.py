"""Reading the ledger: filtered, cursor-paged listings, one event by id, and full exports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.events import MAX_CUSTOMER_REF_LENGTH, MAX_METRIC_LENGTH, Source
from stripemeter.domain.periods import BillingCycle, period_for
from stripemeter.services.read_params import (
    check_length,
    decode_cursor,
    encode_cursor,
    parse_instant,
    pick,
)
from stripemeter.store import cycles, ledger
from stripemeter.store.database import Database
from stripemeter.store.ledger import EventFilter

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
EXPORT_CHUNK = 1000  # events per database fetch while exporting
MAX_EVENT_ID = 2**63 - 1  # ids are BIGINT; anything larger cannot exist
STATUSES = ("accepted", "held", "approved", "dismissed")  # held = awaiting review
_CURSOR_KIND = "events"


@dataclass(frozen=True, slots=True)
class Review:
    """The decision taken on a held event."""

    decision: str
    actor: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One ledger event as readers see it; ``status`` folds in the review of a held event."""

    id: int
    idempotency_key: str
    tenant_id: str
    metric: str
    customer_ref: str
    resource_id: str | None
    quantity: Decimal
    ts: str  # canonical RFC 3339 text, nanoseconds kept
    period_start: datetime
    status: str
    held_reason: str | None
    review: Review | None
    source: str
    meta_json: str
    received_at: datetime

    @classmethod
    def from_row(
        cls, row: RowMapping, known: Mapping[str, BillingCycle] | None = None
    ) -> EventRecord:
        """Build from a row of ``store.ledger``'s event queries.

        With the customers' cycles (``known``), ``period_start`` is the period the event counts in
        now; the ledger keeps the one it was filed under when it arrived.
        """
        review = None
        status = row["status"]
        if row["decision"] is not None:
            review = Review(row["decision"], row["review_actor"], row["decided_at"])
            status = row["decision"]
        return cls(
            id=row["id"],
            idempotency_key=row["idempotency_key"],
            tenant_id=row["tenant_id"],
            metric=row["metric"],
            customer_ref=row["customer_ref"],
            resource_id=row["resource_id"],
            quantity=row["quantity"],
            ts=row["ts_text"],
            period_start=row["period_start"]
            if known is None
            else period_for(row["ts"], known.get(row["customer_ref"])).start,
            status=status,
            held_reason=row["held_reason"],
            review=review,
            source=row["source"],
            meta_json=row["meta"],
            received_at=row["received_at"],
        )


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of a listing, newest first, and the cursor of the next page."""

    events: list[EventRecord]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        """Whether another page follows."""
        return self.next_cursor is not None


def build_filter(
    *,
    metric: str | None,
    customer_ref: str | None,
    status: str | None,
    source: str | None,
    since: str | None,
    since_alias: str | None,
    until: str | None,
    until_alias: str | None,
) -> EventFilter:
    """Validate listing filters; ``startTime``/``endTime`` are aliases of the half-open ``from``/``to``."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(STATUSES)} (held means awaiting review)",
            code="invalid_parameter",
            param="status",
        )
    sources = [s.value for s in Source]
    if source is not None and source not in sources:
        raise InvalidInput(
            f"source must be one of {', '.join(sources)}", code="invalid_parameter", param="source"
        )
    since_name, since_text = pick("from", since, "startTime", since_alias)
    until_name, until_text = pick("to", until, "endTime", until_alias)
    start = parse_instant(since_text, since_name) if since_text is not None else None
    end = parse_instant(until_text, until_name) if until_text is not None else None
    if start is not None and end is not None and start >= end:
        raise InvalidInput(
            f"{until_name} must be later than {since_name} (the range is [from, to))",
            code="invalid_range",
            param=until_name,
        )
    return EventFilter(
        metric=check_length(metric, "metric", MAX_METRIC_LENGTH),
        customer_ref=check_length(customer_ref, "customerRef", MAX_CUSTOMER_REF_LENGTH),
        status=status,
        source=source,
        since=start,
        until=end,
    )


async def list_events(
    db: Database, tenant_id: str, spec: EventFilter, *, limit: int, cursor: str | None
) -> EventPage:
    """A page of the tenant's matching events, newest first, after ``cursor``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_parameter", param="limit"
        )
    before = None
    if cursor is not None:
        before = decode_cursor(cursor, _CURSOR_KIND)
        if not isinstance(before, int) or isinstance(before, bool):
            raise InvalidInput("cursor is malformed", code="invalid_cursor", param="cursor")
    async with db.read() as conn:
        rows = await ledger.list_events(conn, tenant_id, spec, before_id=before, limit=limit + 1)
        known = await _cycles(conn, tenant_id, rows[:limit])
    records = [EventRecord.from_row(row, known) for row in rows[:limit]]
    more = len(rows) > limit
    return EventPage(records, encode_cursor(_CURSOR_KIND, records[-1].id) if more else None)


async def get_event(db: Database, tenant_id: str, event_id: int) -> EventRecord:
    """One of the tenant's events; another tenant's id is as unknown as a missing one."""
    row = None
    if 0 < event_id <= MAX_EVENT_ID:
        async with db.read() as conn:
            row = await ledger.get_event(conn, tenant_id, event_id)
            known = await _cycles(conn, tenant_id, [row] if row is not None else [])
    if row is None:
        raise NotFound(f"no event with id {event_id}", code="event_not_found", param="id")
    return EventRecord.from_row(row, known)


async def export_events(
    db: Database, tenant_id: str, spec: EventFilter
) -> AsyncIterator[EventRecord]:
    """Every matching event, newest first, read in chunks inside one read transaction."""
    async with db.read() as conn:
        known = await cycles.for_tenant(conn, tenant_id, spec.customer_ref)
        async for row in ledger.stream_events(conn, tenant_id, spec, chunk=EXPORT_CHUNK):
            yield EventRecord.from_row(row, known)


async def _cycles(conn: Any, tenant_id: str, rows: list[RowMapping]) -> dict[str, BillingCycle]:
    """The billing cycles of the customers of these events, by customerRef."""
    found = await cycles.load(conn, {(tenant_id, row["customer_ref"]) for row in rows})
    return {customer: cycle for (_, customer), cycle in found.items()}
