"""Ingest (`POST /v1/events/ingest`, `POST /v1/events`) and reading the ledger."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import check_tenant, require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import decode, encode
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.ingest import IngestReport
from stripemeter.services.keys import Principal

router = APIRouter(tags=["events"])


def render_report(report: IngestReport, request_id: str | None) -> tuple[int, str]:
    """(status, JSON body) of an ingest response: 200 unless every event was rejected (400)."""
    results = []
    for r in report.results:
        item: dict[str, Any] = {"index": r.index, "status": r.status}
        if r.idempotency_key is not None:
            item["idempotencyKey"] = r.idempotency_key
        if r.event_id is not None:
            item["eventId"] = r.event_id
        if r.reason is not None:
            item["reason"] = r.reason
        if r.status == "rejected":
            item["error"] = {"field": r.field, "code": r.code, "message": r.message}
        results.append(item)
    totals = report.totals
    body: dict[str, Any] = {
        "accepted": totals["accepted"],
        "duplicates": totals["duplicate"],
        "conflicts": totals["conflict"],
        "held": totals["held"],
        "rejected": totals["rejected"],
        "requestId": request_id,
        "results": results,
    }
    errors = [
        {"index": r.index, "field": r.field, "code": r.code, "message": r.message}
        for r in report.results
        if r.status == "rejected"
    ]
    if errors and len(errors) == len(report.results):
        first = errors[0]
        envelope = {
            "error": {
                "type": "invalid_request_error",
                "code": str(first["code"]),
                "message": f"events[{first['index']}].{first['field']}: {first['message']}"
                if len(errors) == 1
                else f"all {len(errors)} events were rejected; see details",
                "param": f"events[{first['index']}].{first['field']}",
                "details": errors,
            },
            **body,
        }
        return 400, encode(envelope).decode()
    if errors:
        body["errors"] = errors
    return 200, encode(body).decode()


async def _read_events(request: Request, principal: Principal, *, single: bool) -> tuple[bytes, list[Any]]:
    raw = await request.body()
    try:
        body = decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if single:
        if not isinstance(body, dict):
            raise InvalidInput("the body must be one event object", code="invalid_body")
        events = [body]
    else:
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise InvalidInput('the body must be {"events": [...]}', code="invalid_body",
                               param="events")
        unknown = sorted(set(body) - {"events", "tenantId"})
        if unknown:
            raise InvalidInput(f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0])
        check_tenant(principal, body.get("tenantId"))
        events = body["events"]
    limit = services_of(request).settings.max_batch_events
    if not events:
        raise InvalidInput("events must hold at least one event", code="empty_batch", param="events")
    if len(events) > limit:
        raise InvalidInput(f"a batch holds at most {limit} events; got {len(events)}",
                           code="batch_too_large", param="events")
    for index, event in enumerate(events):
        if isinstance(event, dict):
            check_tenant(principal, event.get("tenantId"), param=f"events[{index}].tenantId")
    return raw, events


async def _ingest(request: Request, principal: Principal, atomic: bool, *, single: bool) -> Response:
    services = services_of(request)
    raw, events = await _read_events(request, principal, single=single)
    request_id = request_id_of(request)
    key = request.headers.get("idempotency-key")
    with services.ingest_timer():
        if key:
            if len(key) > 255:
                raise InvalidInput("Idempotency-Key must be at most 255 characters",
                                   param="Idempotency-Key")
            status, body, replayed = await services.ingest.ingest_once(
                principal.tenant_id, events, request_key=key,
                request_body=request.url.query.encode() + b"\n" + raw,
                render=lambda report: render_report(report, request_id),
                request_id=request_id, atomic=atomic,
            )
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return Response(body, status_code=status, media_type="application/json", headers=headers)
        report = await services.ingest.ingest(
            principal.tenant_id, events, request_id=request_id, atomic=atomic
        )
    status, body = render_report(report, request_id)
    return Response(body, status_code=status, media_type="application/json")


@router.post(
    "/v1/events/ingest",
    summary="Ingest a batch of usage events",
    openapi_extra={"requestBody": schemas.request_body(schemas.IngestRequest)},
    response_model=schemas.IngestResponse,
    responses=schemas.ERRORS,
)
async def ingest_batch(
    request: Request,
    atomic: bool = Query(False, description="Store nothing unless every event is valid."),
    principal: Principal = Depends(require(Scope.EVENTS_WRITE)),
) -> Response:
    """Validate, deduplicate and count up to the batch limit of events in one transaction."""
    return await _ingest(request, principal, atomic, single=False)


@router.post(
    "/v1/events",
    summary="Ingest one usage event",
    openapi_extra={"requestBody": schemas.request_body(schemas.EventIn)},
    response_model=schemas.IngestResponse,
    responses=schemas.ERRORS,
)
async def ingest_one(
    request: Request, principal: Principal = Depends(require(Scope.EVENTS_WRITE))
) -> Response:
    """The single-event form of ingest; same response shape."""
    return await _ingest(request, principal, False, single=True)


