"""Metric settings (`/v1/metrics`) and the tenant's strict mode (`/v1/tenant/settings`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import actor_of, read_object, reject_unknown
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import Principal
from stripemeter.services.metrics_settings import (
    MAX_LATENESS_WINDOW_SECONDS,
    MetricSettingsService,
    parse_change,
)

router = APIRouter(tags=["metrics"])

# Metric settings decide how usage is billed (the aggregation a price mapping pushes), so changing
# them takes the same scope as changing price mappings; ``admin`` grants it too.
METRICS_WRITE_SCOPE = Scope.MAPPINGS_WRITE


class MetricSettingsIn(BaseModel):
    """The settings of one metric (PUT replaces them; omitted fields take their defaults)."""

    model_config = ConfigDict(extra="forbid")

    aggregation: Literal["sum", "max", "last", "count"] = Field(
        description="The period value billed: sum, max, last (value at the latest event time) or count."
    )
    latenessWindowSeconds: int | None = Field(
        None,
        ge=0,
        le=MAX_LATENESS_WINDOW_SECONDS,
        description="Events older than watermark minus this are held for review (default: the server's).",
    )
    unit: str | None = Field(None, max_length=40, examples=["requests"])
    description: str | None = Field(None, max_length=2000)


class TenantSettingsIn(BaseModel):
    """Tenant-wide switches."""

    model_config = ConfigDict(extra="forbid")

    strictMetrics: bool = Field(description="Reject events whose metric is not configured.")


def _service(request: Request) -> MetricSettingsService:
    services = services_of(request)
    return MetricSettingsService(services.db, services.catalog)


@router.get(
    "/v1/metrics",
    summary="List configured metrics",
    responses=schemas.ERRORS,
)
async def list_metrics(
    request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """Every metric the tenant configured, and the defaults an unconfigured metric is counted with."""
    service = _service(request)
    views = await service.list(principal.tenant_id)
    defaults = service.defaults("*").to_wire()
    return JSON(
        {
            "metrics": [view.to_wire() for view in views],
            "defaults": {k: defaults[k] for k in ("aggregation", "latenessWindowSeconds", "unit")},
        }
    )


@router.get(
    "/v1/metrics/{metric:path}",
    summary="One metric's settings",
    responses=schemas.ERRORS,
)
async def get_metric(
    metric: str, request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """The metric's settings; an unconfigured metric shows its defaults with ``configured: false``."""
    view = await _service(request).get(principal.tenant_id, metric)
    return JSON(view.to_wire())


@router.put(
    "/v1/metrics/{metric:path}",
    summary="Configure a metric",
    description="Needs the `mappings:write` scope (or `admin`). Every change is written to the audit log.",
    openapi_extra={"requestBody": schemas.request_body(MetricSettingsIn)},
    responses=schemas.ERRORS,
)
async def put_metric(
    metric: str, request: Request, principal: Principal = Depends(require(METRICS_WRITE_SCOPE))
) -> Response:
    """Create or replace a metric's settings; this process uses them at once, others within seconds."""
    body = await read_object(request, principal)
    if "metric" in body and body["metric"] != metric:
        raise InvalidInput("metric in the body differs from the path", param="metric")
    view = await _service(request).put(
        principal.tenant_id,
        metric,
        parse_change(body),
        actor=actor_of(principal),
        request_id=request_id_of(request),
    )
    return JSON(view.to_wire())


def _tenant_settings(tenant_id: str, strict: bool) -> dict[str, Any]:
    return {"tenantId": tenant_id, "strictMetrics": strict}


@router.get(
    "/v1/tenant/settings",
    summary="The tenant's settings",
    tags=["tenant"],
    responses=schemas.ERRORS,
)
async def get_tenant_settings(
    request: Request, principal: Principal = Depends(require(Scope.ADMIN))
) -> Response:
    """Whether strict metric mode is on."""
    strict = await _service(request).strict_mode(principal.tenant_id)
    return JSON(_tenant_settings(principal.tenant_id, strict))


@router.put(
    "/v1/tenant/settings",
    summary="Change the tenant's settings",
    tags=["tenant"],
    openapi_extra={"requestBody": schemas.request_body(TenantSettingsIn)},
    responses=schemas.ERRORS,
)
async def put_tenant_settings(
    request: Request, principal: Principal = Depends(require(Scope.ADMIN))
) -> Response:
    """Turn strict metric mode on (unknown metrics are rejected per event) or off (audited)."""
    body = await read_object(request, principal)
    reject_unknown(body, {"strictMetrics"})
    strict = body.get("strictMetrics")
    if not isinstance(strict, bool):
        raise InvalidInput(
            "strictMetrics must be true or false", code="invalid_value", param="strictMetrics"
        )
    result = await _service(request).set_strict_mode(
        principal.tenant_id, strict, actor=actor_of(principal), request_id=request_id_of(request)
    )
    return JSON(_tenant_settings(principal.tenant_id, result))
