"""Usage reads: a customer's current totals, per-bucket history, and billing values per customer."""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import RowMapping

from stripemeter.domain.aggregation import EMPTY, Aggregation, Contribution, CounterState, fold
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.events import MAX_CUSTOMER_REF_LENGTH, MAX_METRIC_LENGTH
from stripemeter.domain.periods import BillingCycle, Period, calendar_month, period_for
from stripemeter.services.catalog import MetricCatalog, TenantMetrics
from stripemeter.services.read_params import (
    check_length,
    decode_cursor,
    encode_cursor,
    parse_instant,
    parse_period,
    pick,
)
from stripemeter.store import counters, cycles, usage_queries
from stripemeter.store.counters import state_from_row
from stripemeter.store.database import Database

MAX_HISTORY_BUCKETS = 1000
DEFAULT_CUSTOMER_PAGE = 50
MAX_CUSTOMER_PAGE = 1000
_CURSOR_KIND = "usage-customers"


class Interval(enum.StrEnum):
    """The width of a history bucket, aligned to UTC boundaries."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class MetricUsage:
    """One metric's counter in a period, with the aggregation that bills it."""

    metric: str
    aggregation: Aggregation
    unit: str
    state: CounterState
    updated_at: datetime | None

    @property
    def value(self) -> Decimal:
        """The billing value under the metric's aggregation."""
        return self.state.value(self.aggregation)


@dataclass(frozen=True, slots=True)
class CurrentUsage:
    """Every metric of a customer in one period."""

    customer_ref: str
    period: Period
    metrics: list[MetricUsage]


@dataclass(frozen=True, slots=True)
class Bucket:
    """The aggregates of one history bucket: ``label`` is its aligned start, ``[start, end)`` its span."""

    label: datetime
    start: datetime
    end: datetime
    state: CounterState


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """Buckets over ``[since, until)`` and the aggregates of the whole range."""

    customer_ref: str
    metric: str
    aggregation: Aggregation
    unit: str
    interval: Interval
    since: datetime
    until: datetime
    buckets: list[Bucket]
    totals: CounterState


@dataclass(frozen=True, slots=True)
class CustomerUsage:
    """A customer's metrics in one of its periods (its billing cycle's, or the calendar month)."""

    customer_ref: str
    metrics: list[MetricUsage]
    period: Period | None = None


@dataclass(frozen=True, slots=True)
class CustomerPage:
    """A page of customers ordered by reference, and the cursor of the next page."""

    period: Period
    customers: list[CustomerUsage]
    next_cursor: str | None


def resolve_period(label: str | None, now: datetime, cycle: BillingCycle | None = None) -> Period:
    """The customer's period named ``YYYY-MM`` (or ``YYYY-MM-DD``), or the one containing ``now``."""
    return parse_period(label, cycle) if label is not None else period_for(now, cycle)


def _metric_usage(settings: TenantMetrics, row: RowMapping) -> MetricUsage:
    config = settings.get(row["metric"])
    return MetricUsage(
        metric=row["metric"],
        aggregation=config.aggregation,
        unit=config.unit,
        state=state_from_row(row),
        updated_at=row["updated_at"],
    )


async def current_usage(
    db: Database,
    catalog: MetricCatalog,
    tenant_id: str,
    customer_ref: str | None,
    period_label: str | None,
    now: datetime,
) -> CurrentUsage:
    """Every metric a customer has a counter for in the period (default: the one containing now).

    Periods are the customer's: its Stripe billing cycle's when known, else calendar months; the
    period reported is the counters' own.
    """
    customer = _required(customer_ref, "customerRef", MAX_CUSTOMER_REF_LENGTH)
    if period_label is not None:
        parse_period(period_label)  # a malformed label is a 400 before any database work
    settings = await catalog.for_tenant(tenant_id)
    async with db.read() as conn:
        cycle = await cycles.cycle_of(conn, tenant_id, customer)
        period = resolve_period(period_label, now, cycle)
        rows = await counters.for_customer(conn, tenant_id, customer, period.start)
    if rows:
        period = Period(rows[0]["period_start"], rows[0]["period_end"])
    return CurrentUsage(customer, period, [_metric_usage(settings, row) for row in rows])


def floor_to(at: datetime, interval: Interval, cycle: BillingCycle | None = None) -> datetime:
    """The start of the UTC bucket containing ``at`` (``month``: the billing period, with a cycle)."""
    at = at.astimezone(UTC)
    if interval is Interval.HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    if interval is Interval.DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return period_for(at, cycle).start if cycle is not None else calendar_month(at).start


def next_boundary(
    label: datetime, interval: Interval, cycle: BillingCycle | None = None
) -> datetime:
    """The start of the bucket after the one starting at ``label``."""
    if interval is Interval.HOUR:
        return label + timedelta(hours=1)
    if interval is Interval.DAY:
        return label + timedelta(days=1)
    return period_for(label, cycle).end if cycle is not None else calendar_month(label).end


def bucket_spans(
    since: datetime,
    until: datetime,
    interval: Interval,
    *,
    limit: int = MAX_HISTORY_BUCKETS,
    cycle: BillingCycle | None = None,
) -> list[tuple[datetime, datetime, datetime]]:
    """(label, start, end) of each bucket, clipped to ``[since, until)``; at most ``limit`` of them.

    ``month`` buckets are the customer's billing periods when it has a cycle.
    """
    spans: list[tuple[datetime, datetime, datetime]] = []
    label = floor_to(since, interval, cycle)
    while label < until:
        if len(spans) == limit:
            raise InvalidInput(
                f"the range holds more than {limit} {interval.value} buckets; "
                "narrow from/to or use a wider interval",
                code="too_many_buckets",
                param="interval",
                details={"maxBuckets": limit},
            )
        end = next_boundary(label, interval, cycle)
        spans.append((label, max(label, since), min(end, until)))
        label = end
    return spans


def _interval(value: str | None) -> Interval:
    try:
        return Interval(value or Interval.MONTH.value)
    except ValueError:
        raise InvalidInput(
            "interval must be one of hour, day, month", code="invalid_parameter", param="interval"
        ) from None


def _required(value: str | None, param: str, maximum: int) -> str:
    if value is None:
        raise InvalidInput(f"{param} is required", code="missing_parameter", param=param)
    checked = check_length(value, param, maximum)
    assert checked is not None
    return checked


async def usage_history(
    db: Database,
    catalog: MetricCatalog,
    tenant_id: str,
    *,
    customer_ref: str | None,
    metric: str | None,
    since: tuple[str | None, str | None],
    until: tuple[str | None, str | None],
    interval: tuple[str | None, str | None],
    now: datetime,
) -> UsageHistory:
    """Aggregates per bucket, each folded from its own events, over ``[from, to)``.

    ``since``, ``until`` and ``interval`` are (value, alias value) pairs: ``from``/``periodStart``,
    ``to``/``periodEnd`` and ``interval``/``step``. Without a range, the current period is used.
    Accepted events count, and so do approved adjustments that carry an event time; other adjustments
    have no place in time and are left out.
    """
    customer = _required(customer_ref, "customerRef", MAX_CUSTOMER_REF_LENGTH)
    metric_name = _required(metric, "metric", MAX_METRIC_LENGTH)
    since_name, since_text = pick("from", since[0], "periodStart", since[1])
    until_name, until_text = pick("to", until[0], "periodEnd", until[1])
    _, interval_text = pick("interval", interval[0], "step", interval[1])
    width = _interval(interval_text)
    since_at = parse_instant(since_text, since_name) if since_text is not None else None
    until_at = parse_instant(until_text, until_name) if until_text is not None else None
    async with db.read() as conn:
        cycle = await cycles.cycle_of(conn, tenant_id, customer)
    current = period_for(now, cycle)
    start = since_at if since_at is not None else current.start
    end = until_at if until_at is not None else current.end
    if start >= end:
        raise InvalidInput(
            f"{until_name} must be later than {since_name} (the range is [from, to))",
            code="invalid_range",
            param=until_name,
        )
    spans = bucket_spans(start, end, width, cycle=cycle)
    config = (await catalog.for_tenant(tenant_id)).get(metric_name)
    states = [EMPTY] * len(spans)
    starts = [span[1] for span in spans]
    totals = EMPTY

    def add(item: usage_queries.CountedItem) -> None:
        nonlocal totals
        contribution = Contribution(item.quantity, item.at, item.order_key)
        index = bisect.bisect_right(starts, item.at) - 1
        states[index] = fold(states[index], contribution)
        totals = fold(totals, contribution)

    async with db.read() as conn:
        async for item in usage_queries.stream_counted_events(
            conn, tenant_id, metric_name, customer, start, end
        ):
            add(item)
        for adjustment in await usage_queries.approved_event_adjustments(
            conn, tenant_id, metric_name, customer, start, end
        ):
            add(adjustment)
    return UsageHistory(
        customer_ref=customer,
        metric=metric_name,
        aggregation=config.aggregation,
        unit=config.unit,
        interval=width,
        since=start,
        until=end,
        buckets=[
            Bucket(label, b_start, b_end, state)
            for (label, b_start, b_end), state in zip(spans, states, strict=True)
        ],
        totals=totals,
    )


async def customers_usage(
    db: Database,
    catalog: MetricCatalog,
    tenant_id: str,
    *,
    period_label: str | None,
    limit: int,
    cursor: str | None,
    now: datetime,
) -> CustomerPage:
    """Billing values of every metric per customer in the period, a page of customers at a time."""
    if not 1 <= limit <= MAX_CUSTOMER_PAGE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_CUSTOMER_PAGE}",
            code="invalid_parameter",
            param="limit",
        )
    after = decode_cursor(cursor, _CURSOR_KIND) if cursor is not None else None
    if after is not None and not isinstance(after, str):
        raise InvalidInput("cursor is malformed", code="invalid_cursor", param="cursor")
    # Each customer's own period: with ``YYYY-MM`` the one starting in that month (the month itself
    # on calendar months), else the one containing now. The page's period is the calendar month.
    period = resolve_period(period_label, now)
    settings = await catalog.for_tenant(tenant_id)
    async with db.read() as conn:
        rows = await counters.for_period(
            conn,
            tenant_id,
            starting_in=period if period_label is not None else None,
            containing=now,
            after_customer=after,
            limit=limit + 1,
        )
    customers: list[CustomerUsage] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if (row["customer_ref"], row["metric"]) in seen:
            continue  # a weekly or daily cycle starts several periods in a month: the first
        seen.add((row["customer_ref"], row["metric"]))
        usage = _metric_usage(settings, row)
        if not customers or customers[-1].customer_ref != row["customer_ref"]:
            own = Period(row["period_start"], row["period_end"])
            customers.append(CustomerUsage(row["customer_ref"], [], own))
        customers[-1].metrics.append(usage)
    more = len(customers) > limit
    customers = customers[:limit]
    next_cursor = encode_cursor(_CURSOR_KIND, customers[-1].customer_ref) if more else None
    return CustomerPage(period, customers, next_cursor)
