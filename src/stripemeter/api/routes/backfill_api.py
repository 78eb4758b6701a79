"""``/v1/backfill``: stream a file of events through ingest in the background."""

from __future__ import annotations

import pathlib

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import actor_of
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.backfill import BackfillService
from stripemeter.services.keys import Principal

router = APIRouter(prefix="/v1/backfill", tags=["backfill"])


def backfill_of(request: Request) -> BackfillService:
    """The process's backfill service (built on first use)."""
    services = services_of(request)
    found = getattr(services, "backfill", None)
    if found is None:
        from datetime import timedelta

        from stripemeter.domain.events import EventLimits

        limits = EventLimits(
            max_future=timedelta(seconds=services.settings.max_future_seconds),
            max_meta_bytes=services.settings.max_meta_bytes,
        )
        folder = services.settings.backfill_dir
        found = BackfillService(
            services.db, services.ingest, limits, files_dir=pathlib.Path(folder) if folder else None
        )
        services.backfill = found  # type: ignore[attr-defined]
    return found


@router.post("", summary="Start a backfill", status_code=202)
async def create(
    request: Request,
    path: str | None = Query(None, max_length=4096),
    format: str | None = Query(None, pattern="^(jsonl|csv)$"),
    dry_run: bool = Query(False, alias="dryRun"),
    principal: Principal = Depends(require(Scope.EVENTS_WRITE)),
) -> Response:
    """Body: JSONL or CSV events (or ``?path=`` a file the server can read); ``?dryRun=true``."""
    raw = await request.body()
    data = raw.decode("utf-8", errors="strict") if raw.strip() else None
    if data is not None and path is not None:
        raise InvalidInput("send a body or a path, not both", code="two_sources")
    content_type = request.headers.get("content-type", "")
    if format is None and "csv" in content_type:
        format = "csv"
    body = await backfill_of(request).create(
        principal.tenant_id,
        data=data,
        path=path,
        fmt=format,
        dry_run=dry_run,
        actor=actor_of(principal),
    )
    return JSON(body, status_code=202)


@router.get("/{operation_id}", summary="Backfill progress")
async def get(
    request: Request,
    operation_id: str = Path(..., max_length=40),
    principal: Principal = Depends(require(Scope.EVENTS_WRITE)),
) -> Response:
    """Status, counts per result and the first rejections with their line numbers."""
    return JSON(await backfill_of(request).get(principal.tenant_id, operation_id))
