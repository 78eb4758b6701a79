"""The review queue of held events (`/v1/events/held`): list, approve, dismiss."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import JSON, decode
from stripemeter.api.routes._body import actor_of, read_optional_object
from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import Principal
from stripemeter.services.read_params import reject_unknown
from stripemeter.services.review import HeldEvent, ReviewOutcome, ReviewService, validate_note

router = APIRouter(tags=["held events"])

MAX_ID = 2**63 - 1  # ids are 64-bit; larger numbers are 400, never a database error
LIST_PARAMS = frozenset({"tenantId", "status", "metric", "customerRef", "limit", "cursor"})


class DecisionIn(BaseModel):
    """An optional note kept with the decision and in the audit log."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


def _service(request: Request) -> ReviewService:
    return ReviewService(services_of(request).db)


def _meta(text: str) -> Any:
    try:
        return decode(text.encode())
    except msgspec.DecodeError:
        return text


def _held_to_wire(event: HeldEvent) -> dict[str, Any]:
    review = None
    if event.decision is not None:
        review = {
            "decision": event.decision,
            "actor": event.decided_by,
            "decidedAt": event.decided_at,
        }
    return {
        "id": event.id,
        "metric": event.metric,
        "customerRef": event.customer_ref,
        "quantity": event.quantity,
        "ts": event.at,
        "periodStart": event.period_start,
        "reason": event.reason,
        "idempotencyKey": event.idempotency_key,
        "source": event.source,
        "resourceId": event.resource_id,
        "meta": _meta(event.meta),
        "receivedAt": event.received_at,
        "review": review,
    }


def _outcome_to_wire(outcome: ReviewOutcome) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventId": outcome.event_id,
        "decision": outcome.decision,
        "actor": outcome.actor,
        "note": outcome.note,
        "decidedAt": outcome.decided_at,
    }
    if outcome.adjustment_id is not None:
        body["adjustmentId"] = outcome.adjustment_id
    if outcome.counter_key is not None and outcome.counter is not None:
        state = outcome.counter
        body["counter"] = {
            "metric": outcome.counter_key.metric,
            "customerRef": outcome.counter_key.customer_ref,
            "periodStart": outcome.counter_key.period_start,
            "sum": state.sum,
            "max": state.max,
            "last": state.last,
            "count": state.count,
            "watermark": state.watermark,
        }
    return body


@router.get("/v1/events/held", summary="Held events awaiting review", responses=schemas.ERRORS)
async def list_held(
    request: Request,
    status: Literal["pending", "approved", "dismissed"] = Query(
        "pending", description="pending (awaiting review, the default), approved or dismissed."
    ),
    metric: str | None = Query(None, max_length=100),
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = Query(None, description="nextCursor of the previous page."),
    principal: Principal = Depends(require(Scope.EVENTS_READ)),
) -> Response:
    """Events stored but not counted, newest first, each with the reason it was held."""
    reject_unknown(request.query_params.keys(), LIST_PARAMS)
    page = await _service(request).list_held(
        principal.tenant_id,
        status=status,
        metric=metric,
        customer_ref=customer_ref,
        cursor=cursor,
        limit=limit,
    )
    return JSON(
        {
            "events": [_held_to_wire(event) for event in page.items],
            "hasMore": page.next_cursor is not None,
            "nextCursor": page.next_cursor,
        }
    )


@router.post(
    "/v1/events/held/{event_id}/approve",
    summary="Approve a held event",
    description="Counts the event once, as an approved adjustment carrying the event. Scope "
    "`adjustments:approve`. A second decision on the same event is 409 `already_reviewed`.",
    openapi_extra={"requestBody": {**schemas.request_body(DecisionIn), "required": False}},
    responses=schemas.ERRORS,
)
async def approve(
    request: Request,
    event_id: int = Path(ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.ADJUSTMENTS_APPROVE)),
) -> Response:
    """Fold the event into its counter, record the adjustment, the review and an audit entry."""
    note = validate_note(await read_optional_object(request, principal))
    outcome = await _service(request).approve(
        principal.tenant_id,
        event_id,
        actor=actor_of(principal),
        note=note,
        request_id=request_id_of(request),
    )
    return JSON(_outcome_to_wire(outcome))


@router.post(
    "/v1/events/held/{event_id}/dismiss",
    summary="Dismiss a held event",
    description="Keeps the event in the ledger, never counted. Scope `adjustments:approve`.",
    openapi_extra={"requestBody": {**schemas.request_body(DecisionIn), "required": False}},
    responses=schemas.ERRORS,
)
async def dismiss(
    request: Request,
    event_id: int = Path(ge=1, le=MAX_ID),
    principal: Principal = Depends(require(Scope.ADJUSTMENTS_APPROVE)),
) -> Response:
    """Record the dismissal and an audit entry; counters do not change."""
    note = validate_note(await read_optional_object(request, principal))
    outcome = await _service(request).dismiss(
        principal.tenant_id,
        event_id,
        actor=actor_of(principal),
        note=note,
        request_id=request_id_of(request),
    )
    return JSON(_outcome_to_wire(outcome))
