"""Price mappings (`/v1/mappings`): metric → Stripe target, tenant-scoped CRUD."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_object
from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import Principal
from stripemeter.services.mappings import MappingService, mapping_to_wire

router = APIRouter(prefix="/v1/mappings", tags=["stripe sync"])


def _service(request: Request) -> MappingService:
    sync = services_of(request).stripe_sync
    assert sync is not None
    return sync.mappings


@router.get("", summary="List price mappings")
async def list_mappings(
    request: Request,
    active: bool | None = Query(None),
    metric: str | None = Query(None, max_length=100),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """The tenant's mappings, oldest first."""
    found = await _service(request).list(principal.tenant_id, active=active, metric=metric)
    return JSON({"data": [mapping_to_wire(m) for m in found]})


@router.post("", status_code=201, summary="Create a price mapping")
async def create_mapping(
    request: Request, principal: Principal = Depends(require(Scope.MAPPINGS_WRITE))
) -> Response:
    """Validated locally and, when Stripe is reachable, against the meter or price it names."""
    body = await read_object(request, principal)
    mapping = await _service(request).create(principal.tenant_id, body)
    return JSON(mapping_to_wire(mapping), status_code=201)


@router.get("/{mapping_id}", summary="Read a price mapping")
async def get_mapping(
    mapping_id: str, request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """One mapping of the tenant; another tenant's is 404."""
    return JSON(mapping_to_wire(await _service(request).get(principal.tenant_id, mapping_id)))


@router.patch("/{mapping_id}", summary="Change a price mapping")
@router.put("/{mapping_id}", summary="Change a price mapping", include_in_schema=False)
async def update_mapping(
    mapping_id: str,
    request: Request,
    principal: Principal = Depends(require(Scope.MAPPINGS_WRITE)),
) -> Response:
    """Partial update; the result is validated as a whole."""
    body = await read_object(request, principal)
    mapping = await _service(request).update(principal.tenant_id, mapping_id, body)
    return JSON(mapping_to_wire(mapping))


@router.delete("/{mapping_id}", status_code=204, summary="Delete a price mapping")
async def delete_mapping(
    mapping_id: str,
    request: Request,
    principal: Principal = Depends(require(Scope.MAPPINGS_WRITE)),
) -> Response:
    """Stop pushing for this mapping; its write log stays."""
    await _service(request).delete(principal.tenant_id, mapping_id)
    return Response(status_code=204)
