"""Usage reads: `GET /v1/usage/current`, `/v1/usage/history` and `/v1/usage/customers`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api import read_wire, schemas, schemas_read
from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.domain.scopes import Scope
from stripemeter.services import usage
from stripemeter.services.keys import Principal
from stripemeter.services.read_params import reject_unknown

router = APIRouter(tags=["usage"])

PERIOD_HELP = (
    "YYYY-MM: the customer's billing period that starts in that month (the calendar month unless "
    "a Stripe billing cycle is known), or YYYY-MM-DD: the period containing that day; default: "
    "the period containing now."
)
TIME_HELP = "RFC 3339 with an offset (or YYYY-MM-DD for midnight UTC); the range is [from, to)."


def _now() -> datetime:
    return datetime.now(UTC)


@router.get(
    "/v1/usage/current",
    summary="A customer's usage in the current period",
    response_model=schemas_read.CurrentUsageOut,
    responses=schemas.ERRORS,
)
async def current_usage(
    request: Request,
    customer_ref: str | None = Query(None, alias="customerRef", description="Required."),
    period: str | None = Query(None, description=PERIOD_HELP),
    tenant_id: str | None = Query(None, alias="tenantId", description="Must be the key's tenant."),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Every metric of the customer with its billing value under the metric's aggregation."""
    reject_unknown(request.query_params.keys(), frozenset({"tenantId", "customerRef", "period"}))
    services = services_of(request)
    result = await usage.current_usage(
        services.db, services.catalog, principal.tenant_id, customer_ref, period, _now()
    )
    return JSON(
        {
            "customerRef": result.customer_ref,
            "period": read_wire.period_json(result.period),
            "metrics": [read_wire.metric_json(m) for m in result.metrics],
        }
    )


HISTORY_PARAMS = frozenset(
    {"tenantId", "customerRef", "metric", "from", "to", "periodStart", "periodEnd", "interval",
     "step"}
)  # fmt: skip


@router.get(
    "/v1/usage/history",
    summary="A metric's usage per hour, day or month",
    response_model=schemas_read.UsageHistoryOut,
    responses=schemas.ERRORS,
)
async def usage_history(
    request: Request,
    customer_ref: str | None = Query(None, alias="customerRef", description="Required."),
    metric: str | None = Query(None, description="Required."),
    since: str | None = Query(None, alias="from", description=TIME_HELP),
    until: str | None = Query(None, alias="to", description=TIME_HELP),
    period_start: str | None = Query(None, alias="periodStart", description="Alias of from."),
    period_end: str | None = Query(None, alias="periodEnd", description="Alias of to."),
    interval: Literal["hour", "day", "month"] | None = Query(None, description="Default month."),
    step: Literal["hour", "day", "month"] | None = Query(None, description="Alias of interval."),
    tenant_id: str | None = Query(None, alias="tenantId", description="Must be the key's tenant."),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Buckets each folded from their own events (sum, max, last, count), and totals over the range."""
    reject_unknown(request.query_params.keys(), HISTORY_PARAMS)
    services = services_of(request)
    result = await usage.usage_history(
        services.db, services.catalog, principal.tenant_id,
        customer_ref=customer_ref, metric=metric, since=(since, period_start),
        until=(until, period_end), interval=(interval, step), now=_now(),
    )  # fmt: skip
    aggregation = result.aggregation
    return JSON(
        {
            "customerRef": result.customer_ref,
            "metric": result.metric,
            "aggregation": aggregation.value,
            "unit": result.unit,
            "interval": result.interval.value,
            "period": {"start": result.since, "end": result.until},
            "usage": [read_wire.bucket_json(b, b.state.value(aggregation)) for b in result.buckets],
            "totals": read_wire.aggregates_json(result.totals, result.totals.value(aggregation)),
        }
    )


@router.get(
    "/v1/usage/customers",
    summary="Billing values per customer in a period",
    response_model=schemas_read.CustomerListOut,
    responses=schemas.ERRORS,
)
async def customers_usage(
    request: Request,
    period: str | None = Query(None, description=PERIOD_HELP),
    limit: int = Query(usage.DEFAULT_CUSTOMER_PAGE, ge=1, le=usage.MAX_CUSTOMER_PAGE),
    cursor: str | None = Query(None, description="nextCursor of the previous page."),
    tenant_id: str | None = Query(None, alias="tenantId", description="Must be the key's tenant."),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Customers ordered by reference, each with every metric's billing value for the period."""
    reject_unknown(
        request.query_params.keys(), frozenset({"tenantId", "period", "limit", "cursor"})
    )
    services = services_of(request)
    page = await usage.customers_usage(
        services.db, services.catalog, principal.tenant_id,
        period_label=period, limit=limit, cursor=cursor, now=_now(),
    )  # fmt: skip
    return JSON(
        {
            "period": read_wire.period_json(page.period),
            "customers": [
                {
                    "customerRef": c.customer_ref,
                    "period": read_wire.period_json(c.period or page.period),
                    "metrics": [
                        {
                            "metric": m.metric,
                            "aggregation": m.aggregation.value,
                            "value": m.value,
                            "unit": m.unit,
                        }
                        for m in c.metrics
                    ],
                }
                for c in page.customers
            ],
            "hasMore": page.next_cursor is not None,
            "nextCursor": page.next_cursor,
        }
    )
