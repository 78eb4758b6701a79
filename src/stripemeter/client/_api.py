"""The HTTP API as request descriptions: what to send for each call and how to read the answer.

Both clients send the same ``Call``; only the sending differs (``_client.py``, ``_async_client.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from stripemeter.client._base import query, wire_fields
from stripemeter.client._models import (
    Entitlement,
    EventRecord,
    Projection,
    Resource,
    Usage,
    UsageHistory,
    format_time,
    resources,
    to_utc,
)
from stripemeter.client._types import JSONObject, QueryParams, TimeLike

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100  # events per page when listing

Interval = Literal["hour", "day", "month"]
AdjustmentReason = Literal["backfill", "correction", "promo", "credit", "manual"]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and the function that turns its JSON answer into a value."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: QueryParams = field(default_factory=dict)
    json: JSONObject | None = None


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _day(value: date | datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_time(to_utc(value))
    return value.isoformat()


def _with_tenant(tenant_id: str | None, params: QueryParams) -> QueryParams:
    # The server takes the tenant from the key; a tenantId it is sent must match (403 otherwise).
    if tenant_id:
        params = {"tenantId": tenant_id, **params}
    return params


def get_usage(tenant_id: str | None, customer_ref: str, period: str | None) -> Call[Usage]:
    """``GET /v1/usage/current`` (``period``: ``YYYY-MM``, default the current one)."""
    params = query(customerRef=customer_ref, period=period)
    return Call("GET", "/v1/usage/current", Usage.from_json, _with_tenant(tenant_id, params))


def get_usage_history(
    tenant_id: str | None,
    customer_ref: str,
    *,
    metric: str,
    period_start: TimeLike | date | None,
    period_end: TimeLike | date | None,
    interval: Interval | None,
) -> Call[UsageHistory]:
    """``GET /v1/usage/history``."""
    params = query(
        customerRef=customer_ref,
        metric=metric,
        periodStart=_day(period_start),
        periodEnd=_day(period_end),
        interval=interval,
    )
    return Call("GET", "/v1/usage/history", UsageHistory.from_json, _with_tenant(tenant_id, params))


def get_projection(
    tenant_id: str | None,
    customer_ref: str,
    *,
    period: str | None,
    period_start: TimeLike | date | None,
    period_end: TimeLike | date | None,
) -> Call[Projection]:
    """``POST /v1/usage/projection``."""
    body = wire_fields(
        {
            "customer_ref": customer_ref,
            "period": period,
            "period_start": _day(period_start),
            "period_end": _day(period_end),
        }
    )
    return Call(
        "POST",
        "/v1/usage/projection",
        Projection.from_json,
        _with_tenant(tenant_id, {}),
        body,
    )


def check_entitlement(tenant_id: str | None, customer_ref: str, metric: str) -> Call[Entitlement]:
    """``GET /v1/entitlements``."""
    params = query(customerRef=customer_ref, metric=metric)
    return Call("GET", "/v1/entitlements", Entitlement.from_json, _with_tenant(tenant_id, params))


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of ``GET /v1/events`` and the query of the next one (None at the end)."""

    events: tuple[EventRecord, ...]
    next_params: QueryParams | None


def list_events_page(tenant_id: str | None, params: QueryParams) -> Call[EventPage]:
    """One page of ``GET /v1/events``; follow ``next_params`` for the next."""
    full = _with_tenant(tenant_id, params)

    def parse(body: Any) -> EventPage:
        items = body if isinstance(body, list) else (body or {}).get("events") or ()
        events = tuple(EventRecord.from_json(item) for item in items)
        return EventPage(events, next_page(params, body, len(events)))

    return Call("GET", "/v1/events", parse, full)


def events_query(
    *,
    customer_ref: str | None,
    metric: str | None,
    status: str | None,
    source: str | None,
    start_time: TimeLike | None,
    end_time: TimeLike | None,
    page_size: int,
) -> QueryParams:
    """The query of the first page of events (``[start_time, end_time)``)."""
    return query(
        customerRef=customer_ref,
        metric=metric,
        status=status,
        source=source,
        startTime=None if start_time is None else to_utc(start_time),
        endTime=None if end_time is None else to_utc(end_time),
        limit=page_size,
    )


def next_page(params: QueryParams, body: Any, count: int) -> QueryParams | None:
    """The query of the page after this one: by cursor when the server gives one, else by offset."""
    if not isinstance(body, Mapping) or count == 0:
        return None
    cursor = body.get("nextCursor")
    if cursor:
        return {**{k: v for k, v in params.items() if k != "offset"}, "cursor": str(cursor)}
    if body.get("hasMore") is False or "cursor" in params:
        return None
    offset = int(params.get("offset", 0)) + count
    total = body.get("total")
    if total is not None:
        return {**params, "offset": offset} if offset < int(total) else None
    limit = int(params.get("limit", DEFAULT_PAGE_SIZE))
    return {**params, "offset": offset} if count >= limit else None


# Price mappings (issue 3): metric → Stripe meter or subscription item.


def list_mappings(
    tenant_id: str | None, *, active: bool | None, metric: str | None
) -> Call[tuple[Resource, ...]]:
    """``GET /v1/mappings``."""
    params = _with_tenant(tenant_id, query(active=active, metric=metric))
    return Call("GET", "/v1/mappings", lambda b: resources(b, "mappings"), params)


def get_mapping(tenant_id: str | None, mapping_id: str) -> Call[Resource]:
    """``GET /v1/mappings/{id}``."""
    path = f"/v1/mappings/{_segment(mapping_id)}"
    return Call("GET", path, Resource.from_json, _with_tenant(tenant_id, {}))


def create_mapping(tenant_id: str | None, fields: Mapping[str, Any]) -> Call[Resource]:
    """``POST /v1/mappings`` with snake_case fields sent as camelCase."""
    body = wire_fields(fields)
    return Call("POST", "/v1/mappings", Resource.from_json, _with_tenant(tenant_id, {}), body)


def update_mapping(
    tenant_id: str | None, mapping_id: str, fields: Mapping[str, Any]
) -> Call[Resource]:
    """``PATCH /v1/mappings/{id}`` with only the fields to change."""
    path = f"/v1/mappings/{_segment(mapping_id)}"
    params = _with_tenant(tenant_id, {})
    return Call("PATCH", path, Resource.from_json, params, wire_fields(fields))


def delete_mapping(tenant_id: str | None, mapping_id: str) -> Call[None]:
    """``DELETE /v1/mappings/{id}``."""
    path = f"/v1/mappings/{_segment(mapping_id)}"
    return Call("DELETE", path, lambda _b: None, _with_tenant(tenant_id, {}))


# Metric settings and prices configured on metrics.


def get_metric(tenant_id: str | None, metric: str) -> Call[Resource]:
    """``GET /v1/metrics/{metric}``: its settings (defaults when it was never configured)."""
    path = f"/v1/metrics/{_segment(metric)}"
    return Call("GET", path, Resource.from_json, _with_tenant(tenant_id, {}))


def set_metric(tenant_id: str | None, metric: str, fields: Mapping[str, Any]) -> Call[Resource]:
    """``PUT /v1/metrics/{metric}``: replace the metric's settings (aggregation, window, unit)."""
    path = f"/v1/metrics/{_segment(metric)}"
    return Call("PUT", path, Resource.from_json, _with_tenant(tenant_id, {}), wire_fields(fields))


def set_metric_price(
    tenant_id: str | None,
    metric: str,
    price: Mapping[str, Any],
    limits: Mapping[str, Any] | None,
) -> Call[Resource]:
    """``PUT /v1/metric-prices/{metric}``: a Stripe Price object (minor units) and line limits."""
    path = f"/v1/metric-prices/{_segment(metric)}"
    body: JSONObject = {"price": dict(price)}
    if limits is not None:
        body["limits"] = {
            name: str(value) if isinstance(value, Decimal) else value
            for name, value in limits.items()
        }
    return Call("PUT", path, Resource.from_json, _with_tenant(tenant_id, {}), body)


# Customer mappings (issue 3): customerRef → Stripe customer id.


@dataclass(frozen=True, slots=True)
class CustomerPage:
    """One page of ``GET /v1/customers`` and the query of the next one (None at the end)."""

    customers: tuple[Resource, ...]
    next_params: QueryParams | None


def list_customers_page(tenant_id: str | None, params: QueryParams) -> Call[CustomerPage]:
    """One page of ``GET /v1/customers``."""

    def parse(body: Any) -> CustomerPage:
        found = resources(body, "customers")
        cursor = body.get("nextCursor") if isinstance(body, Mapping) else None
        following = {**params, "cursor": str(cursor)} if cursor else None
        return CustomerPage(found, following)

    return Call("GET", "/v1/customers", parse, _with_tenant(tenant_id, params))


def get_customer(tenant_id: str | None, customer_ref: str) -> Call[Resource]:
    """``GET /v1/customers/{customerRef}``."""
    path = f"/v1/customers/{_segment(customer_ref)}"
    return Call("GET", path, Resource.from_json, _with_tenant(tenant_id, {}))


def set_customer(
    tenant_id: str | None,
    customer_ref: str,
    stripe_customer_id: str,
    shadow_stripe_customer_id: str | None,
) -> Call[Resource]:
    """``PUT /v1/customers/{customerRef}``: create or replace the mapping."""
    path = f"/v1/customers/{_segment(customer_ref)}"
    body = wire_fields(
        {
            "stripe_customer_id": stripe_customer_id,
            "shadow_stripe_customer_id": shadow_stripe_customer_id,
        }
    )
    return Call("PUT", path, Resource.from_json, _with_tenant(tenant_id, {}), body)


def delete_customer(tenant_id: str | None, customer_ref: str) -> Call[None]:
    """``DELETE /v1/customers/{customerRef}``."""
    path = f"/v1/customers/{_segment(customer_ref)}"
    return Call("DELETE", path, lambda _b: None, _with_tenant(tenant_id, {}))


def import_customers(
    tenant_id: str | None, customers: Sequence[Mapping[str, Any]]
) -> Call[Resource]:
    """``POST /v1/customers/import``: up to 1,000 mappings, all or nothing."""
    body: JSONObject = {"customers": [wire_fields(item) for item in customers]}
    params = _with_tenant(tenant_id, {})
    return Call("POST", "/v1/customers/import", Resource.from_json, params, body)


# Reconciliation (issue 4).


def get_reconciliation(
    tenant_id: str | None, period: str, *, customer_ref: str | None
) -> Call[Resource]:
    """``GET /v1/reconciliation?period=YYYY-MM``: the current report rows of a period."""
    params = _with_tenant(tenant_id, query(period=period, customerRef=customer_ref))
    return Call("GET", "/v1/reconciliation", Resource.from_json, params)


def get_reconciliation_summary(
    tenant_id: str | None, period_start: str, period_end: str
) -> Call[Resource]:
    """``GET /v1/reconciliation/summary``: per metric and overall drift."""
    params = _with_tenant(tenant_id, query(periodStart=period_start, periodEnd=period_end))
    return Call("GET", "/v1/reconciliation/summary", Resource.from_json, params)


def run_reconciliation(tenant_id: str | None, customer_ref: str | None) -> Call[Resource]:
    """``POST /v1/reconciliation/run``."""
    body = wire_fields({"customer_ref": customer_ref})
    params = _with_tenant(tenant_id, {})
    return Call("POST", "/v1/reconciliation/run", Resource.from_json, params, body)


def apply_suggestion(tenant_id: str | None, suggestion_id: str) -> Call[Resource]:
    """``POST /v1/reconciliation/suggestions/{id}/apply``."""
    path = f"/v1/reconciliation/suggestions/{_segment(suggestion_id)}/apply"
    return Call("POST", path, Resource.from_json, _with_tenant(tenant_id, {}), {})


# Adjustments (issue 4): pending → approved | rejected; approved → reverted.


def list_adjustments(
    tenant_id: str | None, filters: Mapping[str, Any]
) -> Call[tuple[Resource, ...]]:
    """``GET /v1/adjustments``."""
    params = _with_tenant(tenant_id, query(**wire_fields(filters)))
    return Call("GET", "/v1/adjustments", lambda b: resources(b, "adjustments"), params)


def get_adjustment(tenant_id: str | None, adjustment_id: str) -> Call[Resource]:
    """``GET /v1/adjustments/{id}``."""
    path = f"/v1/adjustments/{_segment(adjustment_id)}"
    return Call("GET", path, Resource.from_json, _with_tenant(tenant_id, {}))


def create_adjustment(
    tenant_id: str | None,
    *,
    metric: str,
    customer_ref: str,
    period_start: TimeLike | date,
    delta: Decimal | int | str,
    reason: AdjustmentReason | str,
    note: str | None,
) -> Call[Resource]:
    """``POST /v1/adjustments``: a pending correction of one counter."""
    body = wire_fields(
        {
            "metric": metric,
            "customer_ref": customer_ref,
            "period_start": _day(period_start),
            "delta": str(delta),
            "reason": reason,
            "note": note,
        }
    )
    params = _with_tenant(tenant_id, {})
    return Call("POST", "/v1/adjustments", Resource.from_json, params, body)


def transition_adjustment(
    tenant_id: str | None,
    adjustment_id: str,
    action: Literal["approve", "reject", "revert"],
    note: str | None,
) -> Call[Resource]:
    """``POST /v1/adjustments/{id}/{approve|reject|revert}``."""
    path = f"/v1/adjustments/{_segment(adjustment_id)}/{action}"
    body = wire_fields({"note": note})
    return Call("POST", path, Resource.from_json, _with_tenant(tenant_id, {}), body)
