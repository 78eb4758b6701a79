"""Stripe ``event`` objects raised by the fake (what webhooks carry)."""

from __future__ import annotations

import copy

from stripemeter.stripe.fake.context import RequestContext
from stripemeter.stripe.fake.state import new_id
from stripemeter.stripe.fake.types import JSONObject

API_VERSION = "2026-07-29.dahlia"


def public(obj: JSONObject) -> JSONObject:
    """Return a copy without the fake's bookkeeping keys (those starting with ``_``)."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def raise_event(ctx: RequestContext, event_type: str, obj: JSONObject, created: int) -> JSONObject:
    """Record an event with a snapshot of ``obj`` and queue it for webhook delivery."""
    event = {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": public(obj)},
        "livemode": ctx.livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    ctx.state.events.append(event)
    ctx.raised_events.append(event)
    return event
