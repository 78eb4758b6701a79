"""Rendering read results on the wire: events as JSON objects and CSV rows, usage as JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from stripemeter.api.json import decode
from stripemeter.domain.aggregation import CounterState
from stripemeter.domain.periods import Period
from stripemeter.domain.quantities import canonical
from stripemeter.domain.times import canonical_time
from stripemeter.services.events_read import EventRecord
from stripemeter.services.usage import Bucket, MetricUsage

CSV_COLUMNS = (
    "id", "idempotencyKey", "tenantId", "metric", "customerRef", "resourceId", "quantity", "ts",
    "periodStart", "status", "heldReason", "reviewDecision", "reviewActor", "reviewDecidedAt",
    "source", "meta", "receivedAt",
)  # fmt: skip
CSV_ROWS_PER_CHUNK = 500  # rows rendered per chunk sent to the client


def event_json(event: EventRecord) -> dict[str, Any]:
    """An event as the JSON routes return it."""
    review = None
    if event.review is not None:
        review = {
            "decision": event.review.decision,
            "actor": event.review.actor,
            "decidedAt": event.review.decided_at,
        }
    return {
        "id": event.id,
        "idempotencyKey": event.idempotency_key,
        "tenantId": event.tenant_id,
        "metric": event.metric,
        "customerRef": event.customer_ref,
        "resourceId": event.resource_id,
        "quantity": event.quantity,
        "ts": event.ts,
        "periodStart": event.period_start,
        "status": event.status,
        "heldReason": event.held_reason,
        "review": review,
        "source": event.source,
        "meta": decode(event.meta_json.encode()),
        "receivedAt": event.received_at,
    }


def _csv_row(event: EventRecord) -> list[str]:
    review = event.review
    return [
        str(event.id),
        event.idempotency_key,
        event.tenant_id,
        event.metric,
        event.customer_ref,
        event.resource_id or "",
        canonical(event.quantity),
        event.ts,
        canonical_time(event.period_start),
        event.status,
        event.held_reason or "",
        review.decision if review else "",
        review.actor if review else "",
        canonical_time(review.decided_at) if review else "",
        event.source,
        event.meta_json,
        canonical_time(event.received_at),
    ]


async def events_csv(events: AsyncIterator[EventRecord]) -> AsyncIterator[str]:
    """RFC 4180 CSV (CRLF line ends, quotes where needed): a header row, then one row per event."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    pending = 0
    async for event in events:
        writer.writerow(_csv_row(event))
        pending += 1
        if pending == CSV_ROWS_PER_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()


def period_json(period: Period) -> dict[str, Any]:
    """A half-open period."""
    return {"start": period.start, "end": period.end}


def aggregates_json(state: CounterState, usage_value: Any) -> dict[str, Any]:
    """The aggregates of a counter state, with the billing value first."""
    return {
        "value": usage_value,
        "sum": state.sum,
        "max": state.max,
        "last": state.last,
        "count": state.count,
    }


def metric_json(usage: MetricUsage) -> dict[str, Any]:
    """One metric's counter in a period."""
    return {
        "metric": usage.metric,
        "aggregation": usage.aggregation.value,
        **aggregates_json(usage.state, usage.value),
        "unit": usage.unit,
        "watermark": usage.state.watermark,
        "updatedAt": usage.updated_at,
    }


def bucket_json(bucket: Bucket, usage_value: Any) -> dict[str, Any]:
    """One history bucket."""
    return {
        "ts": bucket.label,
        "start": bucket.start,
        "end": bucket.end,
        **aggregates_json(bucket.state, usage_value),
    }
