"""Ingest (`POST /v1/events/ingest`, `POST /v1/events`) and reading the ledger."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import check_tenant, require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import decode
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.observability import metrics
from stripemeter.services.ingest import IngestReport
from stripemeter.services.keys import Principal

if TYPE_CHECKING:
    from stripemeter.api.app import Services

router = APIRouter(tags=["events"])
_events_write = require(Scope.EVENTS_WRITE)

# The ingest routes by path (value: whether the body is one event), also served by the ingest edge.
INGEST_PATHS: dict[str, bool] = {"/v1/events/ingest": False, "/v1/events": True}


class _Result(msgspec.Struct, omit_defaults=True, rename="camel"):
    """One event's entry in an ingest response (unset fields are left out)."""

    index: int
    status: str
    idempotency_key: str | None = None
    event_id: int | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None


# Ingest responses hold only strings, integers and nulls, so they need none of the Decimal and
# datetime normalisation of ``api.json.encode``: msgspec encodes the structs directly.
_encoder = msgspec.json.Encoder()


def render_report(report: IngestReport, request_id: str | None) -> tuple[int, str]:
    """(status, JSON body) of an ingest response: 200 unless every event was rejected (400)."""
    results = [
        _Result(
            r.index,
            r.status,
            r.idempotency_key,
            r.event_id,
            r.reason,
            {"field": r.field, "code": r.code, "message": r.message}
            if r.status == "rejected"
            else None,
        )
        for r in report.results
    ]
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
    if not totals["rejected"]:
        return 200, _encoder.encode(body).decode()
    errors = [
        {"index": r.index, "field": r.field, "code": r.code, "message": r.message}
        for r in report.results
        if r.status == "rejected"
    ]
    if len(errors) == len(report.results):
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
        return 400, _encoder.encode(envelope).decode()
    body["errors"] = errors
    return 200, _encoder.encode(body).decode()


def read_events(raw: bytes, principal: Principal, *, single: bool, limit: int) -> list[Any]:
    """The events of an ingest body, or the error that says what is wrong with its shape."""
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
            raise InvalidInput(
                'the body must be {"events": [...]}', code="invalid_body", param="events"
            )
        unknown = sorted(set(body) - {"events", "tenantId"})
        if unknown:
            raise InvalidInput(
                f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0]
            )
        check_tenant(principal, body.get("tenantId"))
        events = body["events"]
    if not events:
        raise InvalidInput(
            "events must hold at least one event", code="empty_batch", param="events"
        )
    if len(events) > limit:
        raise InvalidInput(
            f"a batch holds at most {limit} events; got {len(events)}",
            code="batch_too_large",
            param="events",
        )
    tenant_id = principal.tenant_id
    for index, event in enumerate(events):
        if isinstance(event, dict):
            claimed = event.get("tenantId")
            if claimed is not None and claimed != tenant_id:
                check_tenant(principal, claimed, param=f"events[{index}].tenantId")
    return events


async def run_ingest(
    services: Services,
    principal: Principal,
    raw: bytes,
    *,
    single: bool,
    atomic: bool,
    query: bytes,
    request_id: str | None,
    idempotency_key: str | None,
) -> tuple[int, str, bool]:
    """Ingest one request's body: (status, JSON body, whether it replays a stored response).

    Shared by the routes below and the ingest edge (``api/ingest_edge.py``) that serves them
    ahead of the router.
    """
    events = read_events(raw, principal, single=single, limit=services.settings.max_batch_events)
    started = time.perf_counter()
    try:
        if idempotency_key:
            if len(idempotency_key) > 255:
                raise InvalidInput(
                    "Idempotency-Key must be at most 255 characters", param="Idempotency-Key"
                )
            return await services.ingest.ingest_once(
                principal.tenant_id,
                events,
                request_key=idempotency_key,
                request_body=query + b"\n" + raw,
                render=lambda report: render_report(report, request_id),
                request_id=request_id,
                atomic=atomic,
            )
        report = await services.ingest.ingest(
            principal.tenant_id, events, request_id=request_id, atomic=atomic
        )
    finally:
        metrics.ingest_latency.observe(time.perf_counter() - started)
    status, body = render_report(report, request_id)
    return status, body, False


async def _ingest(
    request: Request, principal: Principal, atomic: bool, *, single: bool
) -> Response:
    status, body, replayed = await run_ingest(
        services_of(request),
        principal,
        await request.body(),
        single=single,
        atomic=atomic,
        query=request.url.query.encode(),
        request_id=request_id_of(request),
        idempotency_key=request.headers.get("idempotency-key"),
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


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
    principal: Principal = Depends(_events_write),
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
async def ingest_one(request: Request, principal: Principal = Depends(_events_write)) -> Response:
    """The single-event form of ingest; same response shape."""
    return await _ingest(request, principal, False, single=True)
