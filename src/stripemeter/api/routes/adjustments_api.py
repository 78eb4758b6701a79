"""``/v1/adjustments``: create, list, read, approve, reject, revert."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import actor_of, read_object, read_optional_object
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.adjustment_flow import AdjustmentFlow, parse_new
from stripemeter.services.keys import Principal

router = APIRouter(prefix="/v1/adjustments", tags=["adjustments"])
MAX_ID = 2**63 - 1


def _flow(request: Request) -> AdjustmentFlow:
    return services_of(request).reconciliation.adjustments


async def _note(request: Request, principal: Principal) -> str | None:
    body = await read_optional_object(request, principal) or {}
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise InvalidInput("note must be a string of at most 2000 characters", param="note")
    return note


@router.post("", summary="Create an adjustment (pending)", status_code=201)
async def create(
    request: Request, principal: Principal = Depends(require(Scope.RECONCILIATION_WRITE))
) -> Response:
    """``{metric, customerRef, period: YYYY-MM, delta, reason, note?}`` → pending."""
    new = parse_new(await read_object(request, principal))
    body = await _flow(request).create(
        principal.tenant_id, new, actor=actor_of(principal), request_id=request_id_of(request)
    )
    return JSON(body, status_code=201)


@router.get("", summary="List adjustments")
async def list_adjustments(
    request: Request,
    status: str | None = Query(None, pattern="^(pending|approved|rejected|reverted)$"),
    metric: str | None = Query(None, max_length=100),
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Newest first."""
    data, next_cursor = await _flow(request).list(
        principal.tenant_id,
        status=status,
        metric=metric,
        customer_ref=customer_ref,
        before_id=cursor,
        limit=limit,
    )
    return JSON({"data": data, "nextCursor": next_cursor})


@router.get("/{adjustment_id}", summary="One adjustment")
async def get_adjustment(
    request: Request,
    adjustment_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """By id, within the key's tenant."""
    return JSON(await _flow(request).get(principal.tenant_id, adjustment_id))


@router.post("/{adjustment_id}/approve", summary="Approve: count and push (or true up)")
async def approve(
    request: Request,
    adjustment_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.ADJUSTMENTS_APPROVE)),
) -> Response:
    """The creator cannot approve their own unless the tenant allows it."""
    await _note(request, principal)
    return JSON(
        await _flow(request).approve(
            principal.tenant_id,
            adjustment_id,
            actor=actor_of(principal),
            request_id=request_id_of(request),
        )
    )


@router.post("/{adjustment_id}/reject", summary="Reject a pending adjustment")
async def reject(
    request: Request,
    adjustment_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.ADJUSTMENTS_APPROVE)),
) -> Response:
    """Never counted."""
    note = await _note(request, principal)
    return JSON(
        await _flow(request).reject(
            principal.tenant_id,
            adjustment_id,
            actor=actor_of(principal),
            note=note,
            request_id=request_id_of(request),
        )
    )


@router.post("/{adjustment_id}/revert", summary="Revert an approved adjustment (net zero)")
async def revert(
    request: Request,
    adjustment_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.ADJUSTMENTS_APPROVE)),
) -> Response:
    """The counter is recomputed without it; Stripe follows (push or true-up)."""
    note = await _note(request, principal)
    return JSON(
        await _flow(request).revert(
            principal.tenant_id,
            adjustment_id,
            actor=actor_of(principal),
            note=note,
            request_id=request_id_of(request),
        )
    )
