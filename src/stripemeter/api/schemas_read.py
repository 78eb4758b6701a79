"""Wire models of the read routes (events listing, usage) for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from stripemeter.api.schemas import Number


class ReviewOut(BaseModel):
    """The decision taken on a held event."""

    decision: Literal["approved", "dismissed"]
    actor: str
    decidedAt: datetime


class EventOut(BaseModel):
    """One ledger event."""

    id: int
    idempotencyKey: str
    tenantId: str
    metric: str
    customerRef: str
    resourceId: str | None
    quantity: Number
    ts: str = Field(description="Event time, RFC 3339 UTC, sub-microsecond digits kept.")
    periodStart: datetime
    status: Literal["accepted", "held", "approved", "dismissed"] = Field(
        description="held = stored, not counted, awaiting review; approved/dismissed after review."
    )
    heldReason: str | None
    review: ReviewOut | None
    source: str
    meta: dict[str, Any]
    receivedAt: datetime


class EventListOut(BaseModel):
    """A page of events, newest first."""

    events: list[EventOut]
    hasMore: bool
    nextCursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class PeriodOut(BaseModel):
    """A half-open UTC interval ``[start, end)``."""

    start: datetime
    end: datetime


Aggregation = Literal["sum", "max", "last", "count"]


class MetricUsageOut(BaseModel):
    """One metric's counter in a period."""

    metric: str
    aggregation: Aggregation
    value: Number = Field(description="The billing value under the metric's aggregation.")
    sum: Number
    max: Number | None
    last: Number | None
    count: int
    unit: str
    watermark: datetime | None = Field(description="The greatest event time counted.")
    updatedAt: datetime | None


class CurrentUsageOut(BaseModel):
    """Every metric of a customer in one period."""

    customerRef: str
    period: PeriodOut
    metrics: list[MetricUsageOut]


class AggregatesOut(BaseModel):
    """Aggregates folded from the events of a span."""

    value: Number
    sum: Number
    max: Number | None
    last: Number | None
    count: int


class BucketOut(AggregatesOut):
    """One history bucket: ``ts`` is its aligned start, ``[start, end)`` the span counted."""

    ts: datetime
    start: datetime
    end: datetime


class UsageHistoryOut(BaseModel):
    """Buckets of one metric of one customer, and totals over the range."""

    customerRef: str
    metric: str
    aggregation: Aggregation
    unit: str
    interval: Literal["hour", "day", "month"]
    period: PeriodOut = Field(description="The range asked for, [from, to).")
    usage: list[BucketOut]
    totals: AggregatesOut


class CustomerMetricOut(BaseModel):
    """One metric's billing value."""

    metric: str
    aggregation: Aggregation
    value: Number
    unit: str


class CustomerUsageOut(BaseModel):
    """A customer's metrics in its own period (its billing cycle's, or the calendar month)."""

    customerRef: str
    period: PeriodOut
    metrics: list[CustomerMetricOut]


class CustomerListOut(BaseModel):
    """A page of customers ordered by reference."""

    period: PeriodOut
    customers: list[CustomerUsageOut]
    hasMore: bool
    nextCursor: str | None
