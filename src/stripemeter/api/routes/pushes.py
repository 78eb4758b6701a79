"""The push write log (`GET /v1/pushes`) and pushing now (`POST /v1/pushes/flush`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_optional_object, reject_unknown
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services import sync_store as store
from stripemeter.services.keys import Principal
from stripemeter.services.stripe_sync import StripeSync

router = APIRouter(prefix="/v1/pushes", tags=["stripe sync"])


def _sync(request: Request) -> StripeSync:
    sync = services_of(request).stripe_sync
    assert sync is not None
    return sync


def log_to_wire(row: store.LogRow) -> dict[str, Any]:
    """A write-log row in wire names."""
    pending = None
    if row.pending is not None:
        pending = {
            "from": row.pending.from_total,
            "to": row.pending.to_total,
            "timestamp": row.pending.stamp,
            "since": row.pending.since,
            "identifier": row.pending.identifier,
        }
    return {
        "id": row.id,
        "mappingId": row.mapping_id,
        "target": row.target,
        "customerRef": row.customer_ref,
        "periodStart": row.period.start,
        "periodEnd": row.period.end,
        "pushedTotal": row.pushed_total,
        "pushes": row.pushed_seq,
        "lastTimestamp": row.last_stamp,
        "status": row.status,
        "pending": pending,
        "changed": row.dirty,
        "attempts": row.attempts,
        "lastError": row.last_error,
        "nextAttemptAt": row.next_attempt_at,
        "updatedAt": row.updated_at,
    }


@router.get("", summary="The push write log")
async def list_pushes(
    request: Request,
    status: str | None = Query(None, pattern="^(ok|pending|parked)$"),
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    mapping_id: str | None = Query(None, alias="mappingId", max_length=40),
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=1),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Rows newest first, with status, attempts and the last error."""
    async with _sync(request).pusher.db.read() as conn:
        rows = await store.list_log(
            conn,
            principal.tenant_id,
            status=status,
            customer_ref=customer_ref,
            mapping_id=mapping_id,
            after_id=cursor,
            limit=limit + 1,
        )
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return JSON({"data": [log_to_wire(r) for r in page], "nextCursor": next_cursor})


@router.post("/flush", summary="Push now")
async def flush(
    request: Request, principal: Principal = Depends(require(Scope.MAPPINGS_WRITE))
) -> Response:
    """``{customerRef?, retryParked?}``: push the tenant's changes now; returns when done."""
    body = await read_optional_object(request, principal) or {}
    reject_unknown(body, {"customerRef", "retryParked"})
    ref = body.get("customerRef")
    if ref is not None and (not isinstance(ref, str) or not ref):
        raise InvalidInput("customerRef must be a string", code="invalid_type", param="customerRef")
    retry = body.get("retryParked", False)
    if not isinstance(retry, bool):
        raise InvalidInput(
            "retryParked must be a boolean", code="invalid_type", param="retryParked"
        )
    sync = _sync(request)
    if sync.accounts.live is None:
        raise InvalidInput("Stripe is not configured", code="stripe_not_configured")
    summary = await sync.pusher.flush(principal.tenant_id, ref, retry_parked=retry)
    return JSON({"rows": summary.rows, "results": summary.results})
