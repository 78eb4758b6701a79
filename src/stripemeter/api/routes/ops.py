"""Liveness, readiness and Prometheus metrics (no API key unless configured)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from stripemeter._version import __version__
from stripemeter.api.auth import presented_key
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.domain.errors import Forbidden
from stripemeter.domain.scopes import Scope, allows
from stripemeter.observability.metrics import registry

router = APIRouter(tags=["operations"])


@router.get("/health/live", summary="The process is up")
async def live() -> Response:
    """Answers while the event loop runs."""
    return JSON({"status": "alive", "version": __version__})


@router.get(
    "/health/ready", summary="Ready to take traffic", responses={503: {"description": "Not ready"}}
)
async def ready(request: Request) -> Response:
    """Checks the database with a real query; 503 when any check fails."""
    services = services_of(request)
    checks: dict[str, dict[str, object]] = {}
    try:
        await services.db.ping()
        checks["database"] = {"ok": True, "backend": services.db.dialect}
    except Exception as exc:  # readiness reports failures rather than raising them
        checks["database"] = {
            "ok": False,
            "backend": services.db.dialect,
            "error": type(exc).__name__,
        }
    checks["ingest"] = {"ok": services.ingest_running()}
    checks["stripe"] = services.stripe_sync.health()
    healthy = all(bool(c["ok"]) for c in checks.values())
    return JSON(
        {"status": "ready" if healthy else "unavailable", "version": __version__, "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/health", include_in_schema=False)
async def health(request: Request) -> Response:
    """Alias of readiness for load balancers that probe one path."""
    return await ready(request)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}
    },
)
async def prometheus(request: Request) -> Response:
    """Text exposition of every collector; needs an admin key when metrics are not public."""
    services = services_of(request)
    if not services.settings.metrics_public:
        principal = await services.keys.authenticate(presented_key(request))
        if not allows(principal.scopes, Scope.ADMIN):
            raise Forbidden("metrics need an admin key", code="missing_scope")
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
