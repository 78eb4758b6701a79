"""Reading the audit log (`GET /v1/audit`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.domain.scopes import Scope
from stripemeter.services.audit_log import AuditLogService
from stripemeter.services.keys import Principal
from stripemeter.services.read_params import reject_unknown

router = APIRouter(tags=["audit"])

LIST_PARAMS = frozenset({"tenantId", "limit", "cursor"})


@router.get("/v1/audit", summary="The tenant's audit log", responses=schemas.ERRORS)
async def list_audit(
    request: Request,
    limit: int = Query(100, ge=1, le=500),
    cursor: str | None = Query(None, description="nextCursor of the previous page."),
    principal: Principal = Depends(require(Scope.ADMIN)),
) -> Response:
    """Who changed what, newest first (admin only)."""
    reject_unknown(request.query_params.keys(), LIST_PARAMS)
    page = await AuditLogService(services_of(request).db).page(
        principal.tenant_id, cursor=cursor, limit=limit
    )
    return JSON(
        {
            "entries": [
                {
                    "id": entry.id,
                    "actor": entry.actor,
                    "action": entry.action,
                    "targetType": entry.target_type,
                    "targetId": entry.target_id,
                    "details": entry.details,
                    "requestId": entry.request_id,
                    "createdAt": entry.created_at,
                }
                for entry in page.items
            ],
            "hasMore": page.next_cursor is not None,
            "nextCursor": page.next_cursor,
        }
    )
