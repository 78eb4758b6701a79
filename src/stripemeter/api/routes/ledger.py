"""Reading the ledger: `GET /v1/events` (JSON pages or a CSV export) and `GET /v1/events/{id}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from stripemeter.api import read_wire, schemas, schemas_read
from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services import events_read
from stripemeter.services.keys import Principal
from stripemeter.services.read_params import reject_unknown

router = APIRouter(tags=["events"])

LIST_PARAMS = frozenset(
    {"tenantId", "metric", "customerRef", "status", "source", "from", "to", "startTime",
     "endTime", "limit", "cursor", "format"}
)  # fmt: skip
TIME_HELP = "RFC 3339 with an offset (or YYYY-MM-DD for midnight UTC); the range is [from, to)."


@router.get(
    "/v1/events",
    summary="List or export events",
    response_model=schemas_read.EventListOut,
    responses={
        **schemas.ERRORS,
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "A page of events, or CSV with format=csv",
        },
    },
)
async def list_events(
    request: Request,
    metric: str | None = Query(None, max_length=100),
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    status: Literal["accepted", "held", "approved", "dismissed"] | None = Query(
        None, description="held = awaiting review."
    ),
    source: str | None = Query(None, description="sdk, http, etl, import, system or correction."),
    since: str | None = Query(None, alias="from", description=TIME_HELP),
    until: str | None = Query(None, alias="to", description=TIME_HELP),
    start_time: str | None = Query(None, alias="startTime", description="Alias of from."),
    end_time: str | None = Query(None, alias="endTime", description="Alias of to (exclusive)."),
    limit: int = Query(events_read.DEFAULT_PAGE_SIZE, ge=1, le=events_read.MAX_PAGE_SIZE),
    cursor: str | None = Query(None, description="nextCursor of the previous page."),
    format: Literal["json", "csv"] = Query("json", description="csv exports every match."),
    tenant_id: str | None = Query(None, alias="tenantId", description="Must be the key's tenant."),
    principal: Principal = Depends(require(Scope.EVENTS_READ)),
) -> Response:
    """The tenant's events, newest first, filtered; cursor-paged as JSON or streamed whole as CSV."""
    reject_unknown(request.query_params.keys(), LIST_PARAMS)
    spec = events_read.build_filter(
        metric=metric, customer_ref=customer_ref, status=status, source=source,
        since=since, since_alias=start_time, until=until, until_alias=end_time,
    )  # fmt: skip
    db = services_of(request).db
    if format == "csv":
        for name in ("limit", "cursor"):
            if name in request.query_params:
                raise InvalidInput(
                    f"format=csv exports every matching event; {name} does not apply",
                    code="invalid_parameter",
                    param=name,
                )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        filename = f"events-{principal.tenant_id}-{stamp}.csv"
        rows = events_read.export_events(db, principal.tenant_id, spec)
        return StreamingResponse(
            read_wire.events_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    page = await events_read.list_events(db, principal.tenant_id, spec, limit=limit, cursor=cursor)
    return JSON(
        {
            "events": [read_wire.event_json(event) for event in page.events],
            "hasMore": page.has_more,
            "nextCursor": page.next_cursor,
        }
    )


@router.get(
    "/v1/events/{event_id:int}",
    summary="Get one event",
    response_model=schemas_read.EventOut,
    responses=schemas.ERRORS,
)
async def get_event(
    request: Request,
    event_id: int,
    principal: Principal = Depends(require(Scope.EVENTS_READ)),
) -> Response:
    """One event of the caller's tenant; any other id is 404."""
    reject_unknown(request.query_params.keys(), frozenset({"tenantId"}))
    event = await events_read.get_event(services_of(request).db, principal.tenant_id, event_id)
    return JSON(read_wire.event_json(event))
