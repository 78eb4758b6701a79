"""Ingest (`POST /v1/events/ingest`, `POST /v1/events`) and reading the ledger."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from stripemeter.api import schemas
from stripemeter.api.auth import check_tenant, require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import decode
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.ingest import IngestReport
from stripemeter.services.keys import Principal

router = APIRouter(tags=["events"])
_events_write = require(Scope.EVENTS_WRITE)

# The ingest routes by path, as served by ``serve_ingest`` (value: whether the body is one event).
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


async def _read_events(
    request: Request, principal: Principal, *, single: bool
) -> tuple[bytes, list[Any]]:
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
    limit = services_of(request).settings.max_batch_events
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
    return raw, events


async def _ingest(
    request: Request, principal: Principal, atomic: bool, *, single: bool
) -> Response:
    services = services_of(request)
    raw, events = await _read_events(request, principal, single=single)
    request_id = request_id_of(request)
    key = request.headers.get("idempotency-key")
    with services.ingest_timer():
        if key:
            if len(key) > 255:
                raise InvalidInput(
                    "Idempotency-Key must be at most 255 characters", param="Idempotency-Key"
                )
            status, body, replayed = await services.ingest.ingest_once(
                principal.tenant_id,
                events,
                request_key=key,
                request_body=request.url.query.encode() + b"\n" + raw,
                render=lambda report: render_report(report, request_id),
                request_id=request_id,
                atomic=atomic,
            )
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return Response(
                body, status_code=status, media_type="application/json", headers=headers
            )
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


async def serve_ingest(scope: ASGIScope, receive: Receive, send: Send, *, single: bool) -> None:
    """Serve ``POST /v1/events[/ingest]`` (no query string) without routing or dependency solving.

    The request middleware sends the hot ingest requests here: it is what the routes above do with
    their defaults (same authentication, scope check, reading, ingest and rendering functions), minus
    the per-request cost of matching every route of the app and resolving dependencies, which grows
    with the number of routes. Requests with a query string (``atomic``, ``tenantId``) still go
    through the router. Errors are rendered by the app's own exception handlers, as on the router.
    """
    request = Request(scope, receive)
    try:
        principal = await _events_write(request)
        response = await _ingest(request, principal, False, single=single)
    except Exception as exc:
        handler = _handler_for(scope, exc)
        if handler is None:
            raise  # to ServerErrorMiddleware, as from a route
        rendered = handler(request, exc)
        response = await rendered if inspect.isawaitable(rendered) else rendered
    await response(scope, receive, send)


def _handler_for(scope: ASGIScope, exc: Exception) -> Any:
    # ExceptionMiddleware's choice: the app's handlers by the exception's MRO, except the catch-all
    # (``Exception``/500), which belongs to ServerErrorMiddleware.
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
