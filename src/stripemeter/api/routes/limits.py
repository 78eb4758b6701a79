"""Customer limits (`/v1/limits`) and entitlement checks (`/v1/entitlements`)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import check_tenant, presented_key, require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_object, reject_unknown
from stripemeter.api.schemas import ERRORS
from stripemeter.domain.errors import Forbidden
from stripemeter.domain.scopes import Scope, allows
from stripemeter.services.keys import Principal

router = APIRouter(tags=["alerts"], responses=ERRORS)


async def _reader_or_writer(request: Request) -> Principal:
    """A key that reads usage or writes events (the app that ingests also checks entitlements)."""
    principal = await services_of(request).keys.authenticate(presented_key(request))
    if not (
        allows(principal.scopes, Scope.USAGE_READ) or allows(principal.scopes, Scope.EVENTS_WRITE)
    ):
        raise Forbidden(
            "this API key lacks the 'usage:read' or 'events:write' scope", code="missing_scope"
        )
    check_tenant(principal, request.query_params.get("tenantId"))
    structlog.contextvars.bind_contextvars(tenant=principal.tenant_id, key_id=principal.key_id)
    request.state.principal = principal
    return principal


@router.get("/v1/limits", summary="Customer limits")
async def list_limits(
    request: Request,
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    metric: str | None = Query(None, max_length=100),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """The tenant's limits per (customer, metric); percent-of-limit rules and caps read them."""
    data = await services_of(request).alerts.list_limits(principal.tenant_id, customer_ref, metric)
    return JSON({"data": data})


@router.put("/v1/limits", summary="Set a customer's limit on a metric")
async def put_limit(
    request: Request, principal: Principal = Depends(require(Scope.MAPPINGS_WRITE))
) -> Response:
    """``{customerRef, metric, limit}``: creates or replaces the limit."""
    body = await read_object(request, principal)
    reject_unknown(body, {"customerRef", "metric", "limit"})
    return JSON(await services_of(request).alerts.put_limit(principal.tenant_id, body))


@router.delete("/v1/limits", status_code=204, summary="Remove a customer's limit")
async def delete_limit(
    request: Request,
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    metric: str | None = Query(None, max_length=100),
    principal: Principal = Depends(require(Scope.MAPPINGS_WRITE)),
) -> Response:
    """``?customerRef&metric``."""
    await services_of(request).alerts.delete_limit(principal.tenant_id, customer_ref, metric)
    return Response(status_code=204)


@router.get("/v1/entitlements", summary="May this customer use more of a metric?")
async def entitlement(
    request: Request,
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    metric: str | None = Query(None, max_length=100),
    principal: Principal = Depends(_reader_or_writer),
) -> Response:
    """``allowed`` is false once the period's value reached a hard cap; with the numbers behind it."""
    document = await services_of(request).alerts.entitlement(
        principal.tenant_id, customer_ref, metric
    )
    return JSON(document)
