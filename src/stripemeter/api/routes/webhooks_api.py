"""``POST /v1/webhooks/stripe``: Stripe's events in (signature-checked; no API key)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON

router = APIRouter(tags=["webhooks"])


async def _receive(request: Request, tenant_hint: str | None) -> Response:
    inbox = services_of(request).reconciliation.webhooks
    body = await request.body()
    receipt = await inbox.receive(body, request.headers.get("stripe-signature"), tenant_hint)
    return JSON(
        {
            "received": True,
            "id": receipt.event_id,
            "type": receipt.event_type,
            "duplicate": receipt.duplicate,
        }
    )


@router.post("/v1/webhooks/stripe", summary="Receive a Stripe webhook")
async def stripe_webhook(request: Request) -> Response:
    """Verified, recorded by event id, answered at once; handled after the response."""
    return await _receive(request, None)


@router.post("/v1/webhooks/stripe/{tenant_id}", summary="Receive a Stripe webhook for one tenant")
async def stripe_webhook_for_tenant(
    request: Request, tenant_id: str = Path(..., min_length=1, max_length=64)
) -> Response:
    """As ``/v1/webhooks/stripe``, acting only on this tenant's customers."""
    return await _receive(request, tenant_id)
