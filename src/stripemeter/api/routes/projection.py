"""Cost projection (`/v1/usage/projection`) and prices configured on metrics (`/v1/metric-prices`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_object, reject_unknown
from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import Principal
from stripemeter.services.projection import parse_query
from stripemeter.services.read_params import reject_unknown as reject_unknown_query

router = APIRouter(tags=["pricing"])

# A configured price decides what a metric costs, like a price mapping does: same scope.
PRICES_WRITE_SCOPE = Scope.MAPPINGS_WRITE
PROJECTION_FIELDS = {"customerRef", "period", "periodStart", "periodEnd", "windowSeconds",
                     "taxRate", "credits"}  # fmt: skip


class ProjectionIn(BaseModel):
    """What to project; only customerRef is required."""

    model_config = ConfigDict(extra="forbid")

    tenantId: str | None = Field(None, description="If present, must be the API key's tenant.")
    customerRef: str = Field(examples=["cus_ABC123"])
    period: str | None = Field(None, description="YYYY-MM; default: the period containing now.")
    periodStart: str | None = Field(
        None, description="Start of a billing period (date or RFC 3339)."
    )
    periodEnd: str | None = Field(None, description="Its end (exclusive); checked when given.")
    windowSeconds: int | None = Field(
        None, ge=1, description="Run-rate window (default 7 days), clipped to the period so far."
    )
    taxRate: schemas.Number | None = Field(None, description="Exclusive tax, percent.")
    credits: list[dict[str, Any]] | None = Field(
        None, description="[{amount (major units), reason?, expiresAt?}] drawn before tax."
    )


class MetricPriceIn(BaseModel):
    """A Stripe Price object (minor units, as Stripe's API) and optional line limits (major units)."""

    model_config = ConfigDict(extra="forbid")

    price: dict[str, Any] = Field(
        examples=[{"currency": "usd", "billing_scheme": "per_unit", "unit_amount_decimal": "0.5"}]
    )
    limits: dict[str, schemas.Number] | None = Field(None, examples=[{"minimum": 5}])


@router.post(
    "/v1/usage/projection",
    summary="Project a customer's invoice for a period",
    openapi_extra={"requestBody": schemas.request_body(ProjectionIn)},
    responses=schemas.ERRORS,
)
async def post_projection(
    request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """Usage and cost so far per metric (with tiers), projected to the period end, and totals."""
    body = await read_object(request, principal)
    reject_unknown(body, PROJECTION_FIELDS)
    query = parse_query(
        customer_ref=body.get("customerRef"),
        period=body.get("period"),
        period_start=body.get("periodStart"),
        period_end=body.get("periodEnd"),
        window_seconds=body.get("windowSeconds"),
        tax_rate=body.get("taxRate"),
        credits=body.get("credits"),
    )
    pricing = services_of(request).pricing
    return JSON(await pricing.projection.project(principal.tenant_id, query))


@router.get(
    "/v1/usage/projection",
    summary="Project a customer's invoice for a period",
    responses=schemas.ERRORS,
)
async def get_projection(
    request: Request,
    customer_ref: str | None = Query(None, alias="customerRef", description="Required."),
    period: str | None = Query(None, description="YYYY-MM; default: the current period."),
    period_start: str | None = Query(None, alias="periodStart"),
    period_end: str | None = Query(None, alias="periodEnd"),
    window_seconds: str | None = Query(None, alias="windowSeconds"),
    tax_rate: str | None = Query(None, alias="taxRate"),
    tenant_id: str | None = Query(None, alias="tenantId", description="Must be the key's tenant."),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """The same projection as POST, from query parameters (credits only through POST)."""
    reject_unknown_query(
        request.query_params.keys(), frozenset(PROJECTION_FIELDS - {"credits"} | {"tenantId"})
    )
    query = parse_query(
        customer_ref=customer_ref,
        period=period,
        period_start=period_start,
        period_end=period_end,
        window_seconds=window_seconds,
        tax_rate=tax_rate,
    )
    pricing = services_of(request).pricing
    return JSON(await pricing.projection.project(principal.tenant_id, query))


@router.get(
    "/v1/metric-prices", summary="List prices configured on metrics", responses=schemas.ERRORS
)
async def list_metric_prices(
    request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """Every metric price the tenant configured."""
    prices = await services_of(request).pricing.metric_prices.list(principal.tenant_id)
    return JSON({"prices": prices})


@router.get(
    "/v1/metric-prices/{metric:path}",
    summary="A metric's configured price",
    responses=schemas.ERRORS,
)
async def get_metric_price(
    metric: str, request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """The price configured on one metric."""
    return JSON(await services_of(request).pricing.metric_prices.get(principal.tenant_id, metric))


@router.put(
    "/v1/metric-prices/{metric:path}",
    summary="Configure a metric's price",
    description="Needs `mappings:write` (or `admin`). A Stripe price on the metric's mapping wins.",
    openapi_extra={"requestBody": schemas.request_body(MetricPriceIn)},
    responses=schemas.ERRORS,
)
async def put_metric_price(
    metric: str, request: Request, principal: Principal = Depends(require(PRICES_WRITE_SCOPE))
) -> Response:
    """Create or replace the price of a metric."""
    body = await read_object(request, principal)
    service = services_of(request).pricing.metric_prices
    return JSON(await service.put(principal.tenant_id, metric, body))


@router.delete(
    "/v1/metric-prices/{metric:path}",
    summary="Remove a metric's price",
    status_code=204,
    responses=schemas.ERRORS,
)
async def delete_metric_price(
    metric: str, request: Request, principal: Principal = Depends(require(PRICES_WRITE_SCOPE))
) -> Response:
    """Remove the price configured on a metric."""
    await services_of(request).pricing.metric_prices.delete(principal.tenant_id, metric)
    return Response(status_code=204)
