"""Customer mappings (`/v1/customers`): customerRef → Stripe customer id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_object, read_optional_object
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.customers import METADATA_KEY, CustomerService, customer_to_wire
from stripemeter.services.keys import Principal

router = APIRouter(prefix="/v1/customers", tags=["stripe sync"])


def _service(request: Request) -> CustomerService:
    sync = services_of(request).stripe_sync
    assert sync is not None
    return sync.customers


@router.get("", summary="List customer mappings")
async def list_customers(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=255),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """A page of mappings by customerRef; ``nextCursor`` fetches the next."""
    found = await _service(request).list(principal.tenant_id, after=cursor, limit=limit + 1)
    page = found[:limit]
    next_cursor = page[-1].customer_ref if len(found) > limit else None
    return JSON({"data": [customer_to_wire(c) for c in page], "nextCursor": next_cursor})


@router.post("", status_code=201, summary="Create or replace a customer mapping")
async def put_customer(
    request: Request, principal: Principal = Depends(require(Scope.MAPPINGS_WRITE))
) -> Response:
    """``{customerRef, stripeCustomerId, shadowStripeCustomerId?}``."""
    body = await read_object(request, principal)
    customer = await _service(request).put(principal.tenant_id, body)
    return JSON(customer_to_wire(customer), status_code=201)


@router.post("/import", summary="Import many customer mappings")
async def import_customers(
    request: Request, principal: Principal = Depends(require(Scope.MAPPINGS_WRITE))
) -> Response:
    """``{customers: [...]}``, up to 1,000, all or nothing."""
    body = await read_object(request, principal)
    saved = await _service(request).import_many(principal.tenant_id, body.get("customers"))
    return JSON({"imported": len(saved), "data": [customer_to_wire(c) for c in saved]})


@router.post("/lookup", summary="Find a customer's Stripe id through Stripe customer metadata")
async def lookup_customer(
    request: Request, principal: Principal = Depends(require(Scope.MAPPINGS_WRITE))
) -> Response:
    """``{customerRef, metadataKey?="customerRef", save?=true}``: match Stripe customer metadata."""
    body: dict[str, Any] = await read_optional_object(request, principal) or {}
    ref = body.get("customerRef")
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("customerRef is required", code="missing_field", param="customerRef")
    key = body.get("metadataKey", METADATA_KEY)
    save = body.get("save", True)
    if not isinstance(key, str) or not isinstance(save, bool):
        raise InvalidInput("metadataKey must be a string and save a boolean", code="invalid_type")
    customer = await _service(request).lookup(principal.tenant_id, ref, metadata_key=key, save=save)
    return JSON(customer_to_wire(customer))


@router.get("/{customer_ref}", summary="Read a customer mapping")
async def get_customer(
    customer_ref: str, request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """One mapping of the tenant."""
    return JSON(customer_to_wire(await _service(request).get(principal.tenant_id, customer_ref)))


@router.put("/{customer_ref}", summary="Create or replace a customer mapping by customerRef")
async def replace_customer(
    customer_ref: str,
    request: Request,
    principal: Principal = Depends(require(Scope.MAPPINGS_WRITE)),
) -> Response:
    """Like POST, with the customerRef in the path."""
    body = await read_object(request, principal)
    if body.get("customerRef", customer_ref) != customer_ref:
        raise InvalidInput(
            "customerRef in the body differs from the path",
            code="invalid_value",
            param="customerRef",
        )
    customer = await _service(request).put(
        principal.tenant_id, body | {"customerRef": customer_ref}
    )
    return JSON(customer_to_wire(customer))


@router.delete("/{customer_ref}", status_code=204, summary="Delete a customer mapping")
async def delete_customer(
    customer_ref: str,
    request: Request,
    principal: Principal = Depends(require(Scope.MAPPINGS_WRITE)),
) -> Response:
    """Its counters are reported as unmapped from now on."""
    await _service(request).delete(principal.tenant_id, customer_ref)
    return Response(status_code=204)
