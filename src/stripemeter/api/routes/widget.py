"""Customer widget tokens (`POST /v1/widget/tokens`): a tenant's backend mints one per page view."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_object, reject_unknown
from stripemeter.domain.scopes import Scope
from stripemeter.domain.widget_tokens import DEFAULT_TTL, MAX_TTL, MIN_TTL
from stripemeter.services.keys import Principal

router = APIRouter(tags=["widget"])


class WidgetTokenIn(BaseModel):
    """Which customer the widget may show, and for how long."""

    model_config = ConfigDict(extra="forbid")

    customerRef: str = Field(min_length=1, max_length=255, examples=["cus_local_42"])
    ttlSeconds: int | None = Field(
        None,
        ge=int(MIN_TTL.total_seconds()),
        le=int(MAX_TTL.total_seconds()),
        description=f"Lifetime in seconds (default {int(DEFAULT_TTL.total_seconds())}).",
    )


@router.post(
    "/v1/widget/tokens",
    status_code=201,
    summary="Mint a customer widget token",
    description="A short-lived, read-only token for one customer of the key's tenant, to put in "
    '`<script src="…/widget/embed.js" data-token="…">`. Mint it on your server for the signed-in '
    "customer; never ship an API key to the browser. Scope `usage:read`.",
    openapi_extra={"requestBody": schemas.request_body(WidgetTokenIn)},
    responses=schemas.ERRORS,
)
async def mint_widget_token(
    request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """Sign ``{tenant, customerRef, expiry}``; the widget pages verify it on every request."""
    body = await read_object(request, principal)
    reject_unknown(body, {"customerRef", "ttlSeconds"})
    minted = await services_of(request).widget_tokens.mint(
        principal.tenant_id, body.get("customerRef"), body.get("ttlSeconds")
    )
    base = str(request.base_url).rstrip("/")
    return JSON(
        {
            "token": minted.token,
            "customerRef": minted.customer_ref,
            "expiresAt": minted.expires_at,
            "frameUrl": f"{base}/widget/frame?token={minted.token}",
            "embed": f'<script src="{base}/widget/embed.js" data-token="{minted.token}"></script>',
        },
        status_code=201,
    )
